"""Superpixel pools: the class of each superpixel, and the frame-0 merge with the annotation.

Conventions: superpixel maps are [H, W] integer arrays labelled densely 1..N; class maps are
[H, W] integer arrays with 1 = background and 2.. = objects (0 is allowed in maps being pooled
and means "no class", e.g. pixels removed from a pre-segmentation). Pools are [N] int32, entry
n - 1 being the pool of superpixel n.
"""

import numpy as np
from scipy import ndimage

# 4-connectivity, as the pieces of the frame-0 merge are defined.
_FOUR_CONNECTED = ndimage.generate_binary_structure(2, 1)


def _check_maps(spx: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Validates a superpixel map and a class map of the same frame; returns them as int64."""
  spx = np.asarray(spx)
  label = np.asarray(label)
  if spx.ndim != 2 or label.ndim != 2:
    raise ValueError(f'superpixel and class maps must be [H, W]; got {spx.shape} and {label.shape}')
  if spx.shape != label.shape:
    raise ValueError(f'superpixel map {spx.shape} and class map {label.shape} differ in shape')
  if spx.size == 0:
    raise ValueError('superpixel map is empty')
  if not (np.issubdtype(spx.dtype, np.integer) and np.issubdtype(label.dtype, np.integer)):
    raise ValueError(f'maps must be integer; got {spx.dtype} and {label.dtype}')
  spx = spx.astype(np.int64)
  label = label.astype(np.int64)
  if label.min() < 0:
    raise ValueError(f'class labels must be >= 0; found {label.min()}')
  low, high = int(spx.min()), int(spx.max())
  # A count per id (ids are bounded by the pixel count when dense) rather than np.unique's sort.
  dense = low == 1 and high <= spx.size and np.bincount(spx.ravel())[1:].all()
  if not dense:
    raise ValueError(
      'superpixel labels must be dense 1..N (relabel them first); found '
      f'{np.unique(spx).size} distinct ids between {low} and {high}'
    )
  return spx, label


def mode_pools(spx: np.ndarray, label: np.ndarray) -> np.ndarray:
  """Most frequent class of each superpixel.

  Args:
    spx: [H, W] int superpixel map, dense labels 1..N (non-dense maps are refused).
    label: [H, W] int class map, values >= 0.

  Returns:
    [N] int32: pool of superpixel n at index n - 1; ties go to the smallest class.
  """
  spx, label = _check_maps(spx, label)
  num_spx = int(spx.max())
  num_labels = int(label.max()) + 1
  counts = np.bincount(
    ((spx - 1) * num_labels + label).ravel(), minlength=num_spx * num_labels
  ).reshape(num_spx, num_labels)
  return np.argmax(counts, axis=1).astype(np.int32)


def merge_with_annotation(spx: np.ndarray, label: np.ndarray) -> np.ndarray:
  """Makes frame-0 superpixels adhere to the annotation's borders.

  A pixel whose class equals its superpixel's pool keeps its superpixel id. For each class i
  in turn, the other class-i pixels are split into 4-connected pieces (which may span several
  superpixels); piece j (1-based) gets id M + i + j, M being the largest id of the map built so
  far (initially the largest original id). Ids may therefore coincide with existing ones, which then
  fuse; likewise a pixel of another class whose superpixel id equals M + i is taken into class
  i's pieces and its ids add up. Both follow the reference's id arithmetic and are kept for
  parity. Finally ids are densified in numeric order.

  Args:
    spx: [H, W] int superpixel map, dense labels 1..N (non-dense maps are refused).
    label: [H, W] int class map, values >= 1.

  Returns:
    [H, W] int32 merged superpixel map, dense labels 1..N'.
  """
  spx, label = _check_maps(spx, label)
  if label.min() < 1:
    raise ValueError(f'annotation labels must start at 1; found {label.min()}')
  pool_map = mode_pools(spx, label)[spx - 1]
  merged = np.zeros_like(spx)
  top = int(spx.max())
  for cls in range(1, int(label.max()) + 1):
    is_cls = label == cls
    kept = is_cls & (pool_map == cls)
    pieces = (is_cls & (pool_map != cls)) | (~is_cls & (pool_map == cls) & (spx == top + cls))
    components, _ = ndimage.label(pieces, structure=_FOUR_CONNECTED)
    merged += np.where(kept, spx, 0) + np.where(pieces, top + cls + components, 0)
    top = int(merged.max())
  _, dense = np.unique(merged, return_inverse=True)
  return (dense.reshape(merged.shape) + 1).astype(np.int32)
