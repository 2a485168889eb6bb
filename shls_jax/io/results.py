"""Result masks in the DAVIS results layout: `<results>/<sequence>/<frame>.png`.

Masks are written as indexed PNGs (pixel value = object id, 0 = background) with the DAVIS
palette (`mask_io.write_mask`), and read back from indexed PNGs, plain grayscale id PNGs or 0/255
binarised PNGs (`mask_io.read_mask` with `binary_255=None`).
"""

import os
import shutil
import zipfile
from pathlib import Path

import numpy as np

from shls_jax.io import masks as mask_io


def write_sequence_masks(
  results_dir, sequence: str, masks: np.ndarray, frame_names: list[str], colours=None
) -> list[Path]:
  """Writes [T, H, W] id masks as `<results_dir>/<sequence>/<frame_names[t]>.png` with the palette
  `colours` (default DAVIS'); returns the paths."""
  masks = np.asarray(masks)
  if masks.ndim != 3 or masks.shape[0] != len(frame_names):
    raise ValueError(
      f'masks {masks.shape} do not match {len(frame_names)} frame names (expected [T, H, W])'
    )
  folder = Path(results_dir) / sequence
  paths = [folder / f'{name}.png' for name in frame_names]
  for path, mask in zip(paths, masks):
    mask_io.write_mask(path, mask, colours)
  return paths


def read_sequence_masks(results_dir, sequence: str, frame_names: list[str]) -> np.ndarray:
  """[T, H, W] uint8 ids of `<results_dir>/<sequence>/<name>.png` for each of `frame_names`."""
  folder = Path(results_dir) / sequence
  if not folder.is_dir():
    raise FileNotFoundError(f'results folder {folder} for sequence {sequence!r} does not exist')
  masks = [mask_io.read_mask(folder / f'{name}.png', binary_255=None) for name in frame_names]
  shapes = {m.shape for m in masks}
  if len(shapes) > 1:
    raise ValueError(f'result masks of {sequence!r} mix sizes {sorted(shapes)}')
  return np.stack(masks)


def write_submission_zip(results_dir, sequences: list[str], zip_path, prefix: str = '') -> Path:
  """Zips `<results_dir>/<sequence>/*.png` of `sequences` as `<prefix><sequence>/<frame>.png`:
  the sequence folders at the zip's root for the DAVIS server, under `Annotations/` for the
  YouTube-VOS one; returns the zip's path.

  Raises:
    FileNotFoundError: a sequence has no results folder or no PNG in it.
  """
  results_dir, zip_path = Path(results_dir), Path(zip_path)
  members = []
  for sequence in sequences:
    pngs = sorted((results_dir / sequence).glob('*.png'))
    if not pngs:
      raise FileNotFoundError(f'no result masks in {results_dir / sequence} to submit')
    members += [(png, f'{prefix}{sequence}/{png.name}') for png in pngs]
  partial = zip_path.with_name(zip_path.name + '.partial')
  with zipfile.ZipFile(partial, 'w', zipfile.ZIP_DEFLATED) as archive:
    for path, name in members:
      archive.write(path, name)
  # Renamed when complete: an interrupted run never leaves a truncated zip behind.
  partial.replace(zip_path)
  return zip_path


def write_masks_atomically(
  results_dir: Path, name: str, masks: np.ndarray, frame_names: list[str], colours=None
) -> None:
  """Writes [T, H, W] masks as `<results_dir>/<name>/<frame_names[t]>.png` (palette `colours`,
  default DAVIS') so that each PNG appears whole or not at all.

  A run interrupted mid-sequence then leaves some frames missing, never a truncated PNG, and
  `is_complete` is enough to decide whether to redo it.
  """
  staging = results_dir / f'.{name}.partial'
  shutil.rmtree(staging, ignore_errors=True)
  paths = write_sequence_masks(staging, name, masks, frame_names, colours)
  folder = results_dir / name
  folder.mkdir(parents=True, exist_ok=True)
  for path in paths:
    os.replace(path, folder / path.name)
  shutil.rmtree(staging)


def is_complete(folder: Path, frame_names: list[str]) -> bool:
  """True when `folder` holds the result PNG of every one of `frame_names`."""
  return all((folder / f'{name}.png').is_file() for name in frame_names)
