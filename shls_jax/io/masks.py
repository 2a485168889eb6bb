"""Masks on disk: indexed (palette) PNGs of object ids, their decoding, and overlays on frames.

Conventions: a decoded mask is [H, W] uint8 with 0 = background, 1..K = objects and
255 = void (DAVIS' "don't care" label, never an object id); the palette is DAVIS' (PASCAL VOC's).
Two encodings are read: ids as pixel values (palette or grayscale PNGs, DAVIS-2017 and
YouTube-VOS) and 0/255 single-object masks (the DAVIS-2016 release).
"""

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from shls_jax.io import frames as frame_io

VOID = 255


_PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'


def _read_unfiltered_png(path: Path) -> np.ndarray | None:
  """[H, W] values of an 8-bit palette or grayscale, non-interlaced PNG whose rows are all stored
  unfiltered (as PIL writes masks), by inflating its image data alone; None for any other PNG.

  Masks are inflate-bound, and PIL's decoder adds half as much again on top of zlib.

  Raises:
    ValueError: the image data is damaged (PIL would decode it without a word).
  """
  data = path.read_bytes()
  if data[:8] != _PNG_SIGNATURE or data[12:16] != b'IHDR':
    return None
  width, height, depth, colour, _, _, interlace = struct.unpack('>IIBBBBB', data[16:29])
  if depth != 8 or colour not in (0, 3) or interlace:
    return None
  chunks, pos = [], 8
  while pos + 8 <= len(data):
    (length,) = struct.unpack('>I', data[pos : pos + 4])
    if data[pos + 4 : pos + 8] == b'IDAT':
      chunks.append(data[pos + 8 : pos + 8 + length])
    pos += 12 + length
  try:
    pixels = zlib.decompress(b''.join(chunks))
  except zlib.error as error:
    raise ValueError(f'mask {path} is damaged: its image data does not inflate ({error})') from None
  if len(pixels) != height * (width + 1):
    return None
  rows = np.frombuffer(pixels, np.uint8).reshape(height, width + 1)
  return None if rows[:, 0].any() else np.ascontiguousarray(rows[:, 1:])


def read_indexed_png(path) -> np.ndarray:
  """Raw [H, W] uint8 values of a palette (indices) or grayscale PNG mask."""
  path = Path(path)
  if not path.is_file():
    raise FileNotFoundError(f'mask {path} does not exist')
  values = _read_unfiltered_png(path)
  if values is not None:
    return values
  # Every other PNG (filtered rows, other depths, not a PNG) goes through PIL, which also gives
  # the errors.
  try:
    with Image.open(path) as image:
      mode = image.mode
      values = np.asarray(image, dtype=np.uint8) if mode in ('P', 'L', '1') else None
  except (OSError, SyntaxError) as error:  # not an image, or a truncated one
    raise ValueError(f'mask {path} is not a readable image: {error}') from None
  if values is None:
    raise ValueError(
      f'mask {path} has PIL mode {mode!r}: expected an indexed (P) or '
      'grayscale (L) PNG holding object ids'
    )
  return values


def _id_table(binary_255: bool) -> np.ndarray:
  """Lookup table raw value -> id merging every object into 1 (255 stays void unless binary)."""
  table = np.ones(256, np.uint8)
  table[0] = 0
  if not binary_255:
    table[VOID] = VOID
  return table


_BINARY_255_IDS = _id_table(binary_255=True)


_SINGLE_OBJECT_IDS = _id_table(binary_255=False)


_BINARY_255_OBJECTS = (_BINARY_255_IDS == 1).astype(np.uint8)


_ANY_OBJECT = (_SINGLE_OBJECT_IDS == 1).astype(np.uint8)


def object_pixels(raw: np.ndarray, binary_255: bool = False) -> np.ndarray:
  """[H, W] bool: the pixels of any object of a raw mask (`decode_mask(..., single_object=True)
  == 1` in one table lookup)."""
  return cv2.LUT(raw, _BINARY_255_OBJECTS if binary_255 else _ANY_OBJECT).view(bool)


def decode_mask(
  raw: np.ndarray, binary_255: bool | None = False, single_object: bool = False
) -> np.ndarray:
  """Object ids of a raw mask.

  Args:
    raw: [H, W] uint8 PNG values.
    binary_255: the mask stores its single object as 255 (DAVIS-2016 release); None decides
      per mask: one holding only 0 and 255 is a binarised single-object mask (no id 255 exists:
      K < 255).
    single_object: merge all objects into object 1 (DAVIS-2016 scoring of multi-object masks).

  Returns:
    [H, W] uint8: 0 = background, 1..K = objects, 255 = void (never for binary_255 masks).
  """
  if binary_255 is None:
    binary_255 = raw.max(initial=0) == 255 and bool(np.all((raw == 0) | (raw == 255)))
  if binary_255:
    return cv2.LUT(raw, _BINARY_255_IDS)
  if single_object:
    return cv2.LUT(raw, _SINGLE_OBJECT_IDS)
  return raw


def read_mask(
  path,
  size: tuple[int, int] | None = None,
  binary_255: bool | None = False,
  single_object: bool = False,
) -> np.ndarray:
  """[H, W] uint8 object ids of an annotation or result PNG (see `decode_mask`, also for
  binary_255 None); `size` resizes nearest."""
  return resize_ids(decode_mask(read_indexed_png(path), binary_255, single_object), size)


def resize_ids(mask: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
  """Nearest-neighbour resize to (H, W) so that ids stay ids; None keeps the mask."""
  if size is None or mask.shape == tuple(size):
    return mask
  return cv2.resize(mask, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)


def palette() -> np.ndarray:
  """The DAVIS (PASCAL VOC) colour map: [256, 3] uint8, id 0 black, 1 red, 2 green, ..."""
  ids = np.arange(256)
  colours = np.zeros((256, 3), np.int64)
  # Bits 0, 1, 2 of each id triple go to R, G, B, filling their bits from the top down.
  for shift in range(8):
    for channel in range(3):
      colours[:, channel] |= ((ids >> (3 * shift + channel)) & 1) << (7 - shift)
  return colours.astype(np.uint8)


def write_mask(path, mask: np.ndarray, colours: np.ndarray | None = None) -> None:
  """Writes [H, W] object ids (integers 0..255) as an indexed PNG with the palette `colours`
  ([256, 3] uint8; default the DAVIS one)."""
  mask = np.asarray(mask)
  if mask.ndim != 2:
    raise ValueError(f'mask must be [H, W], got shape {mask.shape}')
  if not np.issubdtype(mask.dtype, np.integer) and mask.dtype != bool:
    raise ValueError(f'mask must hold integer object ids, got dtype {mask.dtype}')
  if mask.size and (mask.min() < 0 or mask.max() > 255):
    raise ValueError(f'object ids must lie in 0..255, got {mask.min()}..{mask.max()}')
  image = Image.fromarray(mask.astype(np.uint8), mode='P')
  image.putpalette(
    (palette() if colours is None else np.asarray(colours, np.uint8)).ravel().tolist()
  )
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  image.save(path)


_OVERLAY_ALPHA = 0.5


def overlay(frame: np.ndarray, mask: np.ndarray, alpha: float = _OVERLAY_ALPHA) -> np.ndarray:
  """[H, W, 3] uint8 RGB frame with objects of the [H, W] id mask tinted in their DAVIS colour."""
  colours = palette()[mask].astype(np.float32)
  blended = (1 - alpha) * frame.astype(np.float32) + alpha * colours
  return np.where(mask[..., None] > 0, np.round(blended), frame).astype(np.uint8)


def write_overlays(folder: Path, frames: list[Path], masks: np.ndarray) -> None:
  """Writes `<folder>/<frame>.jpg` overlays of [T, H, W] masks on the frames at `frames`."""
  folder.mkdir(parents=True, exist_ok=True)
  for path, mask in zip(frames, masks):
    image = overlay(frame_io.read_frame(path), mask)
    cv2.imwrite(str(folder / f'{path.stem}.jpg'), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
