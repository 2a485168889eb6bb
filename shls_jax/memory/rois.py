"""Pre-segmentation cleaning, object ROIs and the attention maps cropped to them.

Conventions: class maps are [H, W] int with 1 = background, 2.. = objects, 0 = removed; a box
is [rmin, rmax, cmin, cmax] with exclusive max; score tables are [N, C] with column j = class
j + 1 and row n - 1 = superpixel n; attention maps are [h, w, 4] float32 (NHWC-style).
"""

import numpy as np
from scipy import ndimage
from skimage.morphology import convex_hull_image

from shls_jax.memory import rules

_FOUR_CONNECTED = ndimage.generate_binary_structure(2, 1)


def clean_preseg(
  preseg: np.ndarray, prev_mask: np.ndarray, num_cls: int, min_overlap: float = rules.MIN_OVERLAP
) -> np.ndarray:
  """Removes object pixels far from the object's previous position.

  For each object class c, the 4-connected components of `preseg == c` whose overlap with
  `prev_mask == c`, divided by max(1, area of `prev_mask == c`), exceeds `min_overlap` qualify;
  class-c pixels outside the convex hull of the qualifying components (as
  `skimage.morphology.convex_hull_image`) become 0. No qualifying component: class c vanishes.

  Args:
    preseg: [H, W] int class map.
    prev_mask: [H, W] int class map of the previous frame.
    num_cls: number of classes C, background included.
    min_overlap: overlap fraction a component must exceed.

  Returns:
    [H, W] int32 cleaned class map.
  """
  if preseg.shape != prev_mask.shape:
    raise ValueError(f'preseg {preseg.shape} and previous mask {prev_mask.shape} differ in shape')
  cleaned = np.array(preseg, dtype=np.int32)
  for cls in range(2, num_cls + 1):
    is_cls = preseg == cls
    components, count = ndimage.label(is_cls, structure=_FOUR_CONNECTED)
    prev = prev_mask == cls
    overlap = np.bincount(components.ravel(), weights=prev.ravel(), minlength=count + 1)
    overlap[0] = 0
    qualifying = np.flatnonzero(overlap / max(1, np.count_nonzero(prev)) > min_overlap)
    if qualifying.size:
      hull = convex_hull_image(np.isin(components, qualifying))
    else:
      hull = np.zeros_like(is_cls)
    cleaned[is_cls & ~hull] = 0
  return cleaned


def roi(mask: np.ndarray, widening: float, min_extent: float = rules.MIN_EXTENT) -> np.ndarray:
  """Box of a binary mask, widened and with a minimum extent.

  The tight box is widened by int(widening * extent) per side and clipped to the frame; an axis
  shorter than `min_extent` of the frame becomes full-range. An empty mask gives the full frame.

  Args:
    mask: [H, W] bool.
    widening: fraction of the tight extent added on each side.
    min_extent: fraction of the frame below which an axis becomes full-range.

  Returns:
    [4] int32 box [rmin, rmax, cmin, cmax].
  """
  height, width = mask.shape
  rows = np.flatnonzero(mask.any(axis=1))
  cols = np.flatnonzero(mask.any(axis=0))
  if rows.size == 0:
    return np.array([0, height, 0, width], dtype=np.int32)
  box = []
  for lo, hi, size in ((rows[0], rows[-1] + 1, height), (cols[0], cols[-1] + 1, width)):
    add = int((hi - lo) * widening)
    lo, hi = max(0, lo - add), min(size, hi + add)
    if hi - lo < min_extent * size:
      lo, hi = 0, size
    box += [lo, hi]
  return np.array(box, dtype=np.int32)


def grow_to_min_size(box: np.ndarray, min_box: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
  """Grows each axis of `box` shorter than `min_box`'s by floor(deficit / 2) per side, clipped.

  Args:
    box: [4] int [rmin, rmax, cmin, cmax].
    min_box: [4] int box whose extents are the minimum.
    shape: (H, W) of the frame.

  Returns:
    [4] int32 box (clipping is not compensated, so it may stay smaller).
  """
  box = np.array(box, dtype=np.int64)
  for axis, size in enumerate(shape):
    deficit = (min_box[2 * axis + 1] - min_box[2 * axis]) - (box[2 * axis + 1] - box[2 * axis])
    if deficit > 0:
      box[2 * axis] = max(0, box[2 * axis] - deficit // 2)
      box[2 * axis + 1] = min(size, box[2 * axis + 1] + deficit // 2)
  return box.astype(np.int32)


def attention_maps(
  spx: np.ndarray, knn_scores: np.ndarray, cent_scores: np.ndarray, boxes: np.ndarray
) -> list[np.ndarray]:
  """4-channel attention map of each object, cropped to its box.

  Channels: kNN score of the object, max kNN score of the other classes (background included),
  centroid score of the object, max centroid score of the other classes.

  Args:
    spx: [H, W] int superpixel map, labels 1..N.
    knn_scores: [N, C] float32 per-class kNN scores.
    cent_scores: [N, C] float32 per-class centroid scores.
    boxes: [C - 1, 4] int boxes of objects 2..C.

  Returns:
    list of C - 1 arrays [h_k, w_k, 4] float32.
  """
  num_cls = knn_scores.shape[1]
  maps = []
  for col, (rmin, rmax, cmin, cmax) in zip(range(1, num_cls), boxes):
    others = np.arange(num_cls) != col
    table = np.stack(
      [
        knn_scores[:, col],
        knn_scores[:, others].max(axis=1),
        cent_scores[:, col],
        cent_scores[:, others].max(axis=1),
      ],
      axis=-1,
    )
    maps.append(table[spx[rmin:rmax, cmin:cmax] - 1].astype(np.float32))
  return maps
