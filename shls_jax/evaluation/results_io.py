"""Result masks in the DAVIS results layout: `<results>/<sequence>/<frame>.png`.

Masks are written as indexed PNGs (pixel value = object id, 0 = background) with the DAVIS
palette, and read back from indexed PNGs, plain grayscale id PNGs or 0/255 binarised PNGs.
"""

from pathlib import Path

import numpy as np
from PIL import Image

from shls_jax.data import davis


def davis_palette() -> np.ndarray:
  """The DAVIS (PASCAL VOC) colour map: [256, 3] uint8, id 0 black, 1 red, 2 green, ..."""
  ids = np.arange(256)
  palette = np.zeros((256, 3), np.int64)
  # Bits 0, 1, 2 of each id triple go to R, G, B, filling their bits from the top down.
  for shift in range(8):
    for channel in range(3):
      palette[:, channel] |= ((ids >> (3 * shift + channel)) & 1) << (7 - shift)
  return palette.astype(np.uint8)


def write_mask(path, mask: np.ndarray) -> None:
  """Writes [H, W] object ids (integers 0..255) as an indexed PNG with the DAVIS palette."""
  mask = np.asarray(mask)
  if mask.ndim != 2:
    raise ValueError(f"mask must be [H, W], got shape {mask.shape}")
  if not np.issubdtype(mask.dtype, np.integer) and mask.dtype != bool:
    raise ValueError(f"mask must hold integer object ids, got dtype {mask.dtype}")
  if mask.size and (mask.min() < 0 or mask.max() > 255):
    raise ValueError(f"object ids must lie in 0..255, got {mask.min()}..{mask.max()}")
  image = Image.fromarray(mask.astype(np.uint8), mode="P")
  image.putpalette(davis_palette().ravel().tolist())
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  image.save(path)


def write_sequence_masks(results_dir, sequence: str, masks: np.ndarray,
                         frame_names: list[str]) -> list[Path]:
  """Writes [T, H, W] id masks as `<results_dir>/<sequence>/<frame_names[t]>.png`; returns paths."""
  masks = np.asarray(masks)
  if masks.ndim != 3 or masks.shape[0] != len(frame_names):
    raise ValueError(f"masks {masks.shape} do not match {len(frame_names)} frame names "
                     "(expected [T, H, W])")
  folder = Path(results_dir) / sequence
  paths = [folder / f"{name}.png" for name in frame_names]
  for path, mask in zip(paths, masks):
    write_mask(path, mask)
  return paths


def read_mask(path) -> np.ndarray:
  """[H, W] uint8 object ids of a result PNG.

  Indexed (palette) PNGs give their indices, grayscale PNGs their values; a mask holding only 0
  and 255 is a binarised single-object mask and reads as 0/1 (no id 255 exists: K < 255).
  """
  mask = davis.read_indexed_png(path)
  if mask.max(initial=0) == 255 and np.all((mask == 0) | (mask == 255)):
    return (mask != 0).astype(np.uint8)
  return mask


def read_sequence_masks(results_dir, sequence: str, frame_names: list[str]) -> np.ndarray:
  """[T, H, W] uint8 ids of `<results_dir>/<sequence>/<name>.png` for each of `frame_names`."""
  folder = Path(results_dir) / sequence
  if not folder.is_dir():
    raise FileNotFoundError(f"results folder {folder} for sequence {sequence!r} does not exist")
  masks = [read_mask(folder / f"{name}.png") for name in frame_names]
  shapes = {m.shape for m in masks}
  if len(shapes) > 1:
    raise ValueError(f"result masks of {sequence!r} mix sizes {sorted(shapes)}")
  return np.stack(masks)
