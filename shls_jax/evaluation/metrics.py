"""DAVIS per-frame metrics: region similarity J (IoU) and boundary F-measure F.

Both follow the DAVIS benchmark definitions:

* J: |pred & gt| / |pred | gt| over non-void pixels; an empty union scores 1.
* F: boundaries are one pixel wide maps (a pixel is on the boundary when it differs from its east,
  south or south-east neighbour); a predicted boundary pixel matches when a ground-truth boundary
  pixel lies within a disk of radius ceil(bound_th * image diagonal) (and vice versa), giving
  precision, recall and their harmonic mean. Empty boundaries: none on either side scores 1, only
  one side empty scores 0.

Masks are boolean [H, W] arrays (any dtype; nonzero = inside), or stacks [T, H, W] for the
batched functions.
"""

import math

import cv2
import numpy as np

BOUND_TH = 0.008


def _check_shapes(gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None):
  if gt.shape != pred.shape:
    raise ValueError(f'ground truth {gt.shape} and prediction {pred.shape} shapes differ')
  if void is not None and void.shape != gt.shape:
    raise ValueError(f'void mask {void.shape} and ground truth {gt.shape} shapes differ')


def jaccard(gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None) -> np.ndarray:
  """Region similarity J.

  Args:
    gt: [..., H, W] ground-truth object mask (nonzero = object).
    pred: [..., H, W] predicted mask, same shape.
    void: optional [..., H, W] mask of pixels to ignore.

  Returns:
    float64 array of shape [...] (a 0-d array for single frames); 1.0 where the union is empty.
  """
  gt, pred = np.asarray(gt, bool), np.asarray(pred, bool)
  _check_shapes(gt, pred, void)
  valid = True if void is None else ~np.asarray(void, bool)
  # Counting a whole array is several times faster than counting along axes.
  axes = None if gt.ndim == 2 else (-2, -1)
  inter = np.count_nonzero(gt & pred & valid, axis=axes)
  union = np.count_nonzero((gt | pred) & valid, axis=axes)
  with np.errstate(invalid='ignore', divide='ignore'):
    return np.where(union == 0, 1.0, inter / np.maximum(union, 1)).astype(np.float64)


def boundary_map(mask: np.ndarray) -> np.ndarray:
  """One-pixel-wide boundary of a binary mask, offset half a pixel towards the origin.

  Args:
    mask: [H, W] binary mask (nonzero = inside).

  Returns:
    [H, W] bool map; a pixel is set when it differs from its east, south or south-east neighbour
    (neighbours past the image edge count as outside, except that the last row compares only
    eastwards, the last column only southwards, and the bottom-right pixel is never set).
  """
  seg = np.asarray(mask, bool)
  h, w = seg.shape
  # One zero row and column past the edge give every pixel its three neighbours.
  padded = np.zeros((h + 1, w + 1), bool)
  padded[:h, :w] = seg
  east, south = padded[:h, 1:], padded[1:, :w]
  bmap = (seg ^ east) | (seg ^ south) | (seg ^ padded[1:, 1:])
  bmap[-1, :] = seg[-1, :] ^ east[-1, :]
  bmap[:, -1] = seg[:, -1] ^ south[:, -1]
  bmap[-1, -1] = False
  return bmap


def disk(radius: int) -> np.ndarray:
  """[2r+1, 2r+1] uint8 disk: 1 where x^2 + y^2 <= r^2 (the DAVIS structuring element)."""
  offsets = np.arange(-radius, radius + 1)
  return (offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius**2).astype(np.uint8)


def boundary_radius(shape: tuple[int, int], bound_th: float = BOUND_TH) -> int:
  """Matching tolerance in pixels: bound_th itself when >= 1, else ceil(bound_th * diagonal)."""
  if bound_th >= 1:
    return int(bound_th)
  return int(math.ceil(bound_th * math.hypot(*shape)))


def _boundary_box(gt: np.ndarray, pred: np.ndarray) -> tuple[slice, slice] | None:
  """Window holding every boundary pixel of both masks, None when both are empty.

  It is the bounding box of gt | pred grown by one pixel (clipped to the image). A boundary
  pixel differs from an east, south or south-east neighbour, so it lies in the box or one pixel
  above or left of it; and the extra row and column below and right are empty, so the window's
  own last row and column (which `boundary_map` compares only one way) hold no boundary unless
  they are the image's. The boundary map of the window is therefore the image's, cropped.
  """
  x, y, w, h = cv2.boundingRect((gt | pred).view(np.uint8))
  if w == 0:
    return None
  height, width = gt.shape
  return slice(max(y - 1, 0), min(y + h + 1, height)), slice(max(x - 1, 0), min(x + w + 1, width))


def f_measure(
  gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None, bound_th: float = BOUND_TH
) -> float:
  """Boundary F-measure of one frame.

  Args:
    gt: [H, W] ground-truth object mask.
    pred: [H, W] predicted mask.
    void: optional [H, W] mask of pixels removed from both masks before taking boundaries.
    bound_th: tolerance as a fraction of the image diagonal (< 1) or in pixels (>= 1).

  Returns:
    F in [0, 1].
  """
  gt, pred = np.asarray(gt, bool), np.asarray(pred, bool)
  _check_shapes(gt, pred, void)
  if gt.ndim != 2:
    raise ValueError(f'f_measure takes [H, W] masks, got shape {gt.shape}')
  if void is not None:
    valid = ~np.asarray(void, bool)
    gt, pred = gt & valid, pred & valid
  radius = boundary_radius(gt.shape, bound_th)
  box = _boundary_box(gt, pred)
  return 1.0 if box is None else _f_measure_window(gt[box], pred[box], radius)


def _f_measure_window(gt: np.ndarray, pred: np.ndarray, radius: int) -> float:
  """F of the masks cropped to `_boundary_box` (pixels outside it are no boundary)."""
  # Dilated maps are only read at boundary pixels, all inside the window: the window's dilations
  # (its border counted as empty) are exact there.
  pred_b, gt_b = boundary_map(pred), boundary_map(gt)
  n_pred, n_gt = np.count_nonzero(pred_b), np.count_nonzero(gt_b)
  if n_pred == 0 or n_gt == 0:
    # No predicted boundary: precision 1, recall 0 (and the reverse); neither: both 1.
    return 1.0 if n_pred == n_gt else 0.0
  kernel = disk(radius)
  precision = np.count_nonzero(pred_b & cv2.dilate(gt_b.view(np.uint8), kernel).view(bool)) / n_pred
  recall = np.count_nonzero(gt_b & cv2.dilate(pred_b.view(np.uint8), kernel).view(bool)) / n_gt
  if precision + recall == 0:
    return 0.0
  return 2 * precision * recall / (precision + recall)


def frame_scores(
  gt: np.ndarray, pred: np.ndarray, bound_th: float = BOUND_TH
) -> tuple[float, float]:
  """(J, F) of one frame without void, both computed in the masks' `_boundary_box` window.

  Args:
    gt: [H, W] bool ground-truth object mask.
    pred: [H, W] bool predicted mask.
    bound_th: F's tolerance, as in `f_measure`.

  Returns:
    The values `jaccard` and `f_measure` give, at a fraction of their cost for small objects.
  """
  _check_shapes(gt, pred, None)
  if gt.ndim != 2 or gt.dtype != bool or pred.dtype != bool:
    raise ValueError(f'frame_scores takes [H, W] bool masks, got {gt.dtype} {gt.shape}')
  radius = boundary_radius(gt.shape, bound_th)
  box = _boundary_box(gt, pred)
  if box is None:
    return 1.0, 1.0
  gt, pred = gt[box], pred[box]
  j = np.count_nonzero(gt & pred) / np.count_nonzero(gt | pred)
  return j, _f_measure_window(gt, pred, radius)


def f_measure_frames(
  gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None, bound_th: float = BOUND_TH
) -> np.ndarray:
  """F for each frame of [T, H, W] stacks; returns float64 [T]."""
  gt, pred = np.asarray(gt), np.asarray(pred)
  _check_shapes(gt, pred, void)
  if gt.ndim != 3:
    raise ValueError(f'f_measure_frames takes [T, H, W] stacks, got shape {gt.shape}')
  return np.array(
    [
      f_measure(gt[t], pred[t], None if void is None else void[t], bound_th)
      for t in range(gt.shape[0])
    ],
    np.float64,
  )
