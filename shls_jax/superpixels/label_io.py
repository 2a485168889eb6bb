"""Superpixel label maps: the dense 1..N convention and their 16-bit PNG files.

Precomputed maps of a DAVIS-style dataset live at `<root>/<sequence>/<frame>.png`, where `frame`
is the stem of the frame's JPEG (e.g. `00000`). A map is a single-channel uint16 PNG holding the
labels 1..N, so at most 65535 superpixels per frame.
"""

import errno
import os
from pathlib import Path

import cv2
import numpy as np

MAX_LABEL = np.iinfo(np.uint16).max


def dense_labels(labels: np.ndarray) -> np.ndarray:
  """Renumbers an [H, W] integer label map to 1..N, keeping the order of the label values.

  Returns:
    [H, W] int32 labels, dense 1..N (N = number of distinct input values).
  """
  labels = np.asarray(labels)
  if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
    raise ValueError(f'a label map must be a 2-D integer array, got {labels.dtype} {labels.shape}')
  if labels.size == 0:
    raise ValueError(f'a label map must not be empty, got shape {labels.shape}')
  low, high = int(labels.min()), int(labels.max())
  if high - low < 4 * labels.size:
    # Compact ranges (every superpixel map): a table of the present values renumbers them in
    # order, as np.unique's inverse would, without sorting every pixel.
    present = np.bincount((labels - low).ravel()) > 0
    if low == 1 and present.all():
      return labels.astype(np.int32, copy=False)
    return np.cumsum(present).astype(np.int32)[labels - low]
  _, inverse = np.unique(labels, return_inverse=True)
  return (inverse.reshape(labels.shape) + 1).astype(np.int32)


def label_path(root, sequence: str, frame: str) -> Path:
  """Path of the label map of `frame` (a JPEG stem such as '00000') of `sequence` under `root`."""
  return Path(root) / sequence / f'{frame}.png'


def write_labels(path, labels: np.ndarray) -> None:
  """Writes [H, W] labels 1..N (N <= 65535) as a 16-bit PNG, creating parent folders.

  The file appears atomically (written under a temporary name, then renamed), so an interrupted
  run never leaves a truncated map behind.
  """
  path = Path(path)
  labels = np.asarray(labels)
  if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer) or labels.size == 0:
    raise ValueError(
      f'{path}: expected a non-empty 2-D integer label map, got {labels.dtype} {labels.shape}'
    )
  lo, hi = int(labels.min()), int(labels.max())
  if lo < 1:
    raise ValueError(f'{path}: labels must start at 1, got a minimum of {lo}')
  if hi > MAX_LABEL:
    raise ValueError(f'{path}: {hi} labels do not fit a 16-bit PNG (at most {MAX_LABEL})')
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(f'.{path.stem}.{os.getpid()}.tmp.png')
  if not cv2.imwrite(str(tmp), labels.astype(np.uint16)):
    raise OSError(errno.EIO, 'cannot write (disk full or not writable)', str(tmp))
  os.replace(tmp, path)


def read_labels(path, shape: tuple[int, int] | None = None) -> np.ndarray:
  """Reads a label map PNG.

  Args:
    path: the PNG file.
    shape: if given, the (H, W) the map must have.

  Returns:
    [H, W] int32 labels, dense 1..N (gaps in the stored labels are closed, order kept).
  """
  path = Path(path)
  if not path.is_file():
    raise FileNotFoundError(f'label map {path} does not exist')
  labels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
  if labels is None:
    raise ValueError(f'label map {path} is not a readable image')
  if labels.ndim != 2 or labels.dtype not in (np.uint8, np.uint16):
    raise ValueError(
      f'label map {path} must be a single-channel 8- or 16-bit PNG, got '
      f'{labels.dtype} with shape {labels.shape}'
    )
  if shape is not None and labels.shape != tuple(shape):
    raise ValueError(
      f'label map {path} is {labels.shape[0]}x{labels.shape[1]}, expected {shape[0]}x{shape[1]}'
    )
  if labels.min() == 0:
    raise ValueError(f'label map {path} holds label 0: labels must start at 1')
  return dense_labels(labels)
