"""ISEC superpixels: iterative over-segmentation by clustering multi-scale Canny edges.

The pipeline, on the luminance of an RGB image:

1. Canny gradients at scales sigma = 1, 2, ... (Gaussian with zero padding, Sobel, non-maximum
   suppression with interpolated neighbours).
2. For each iteration `it`: hysteresis-thresholded edges (high exp(0.02 it) / 10, low 0.1 high),
   their density in an S x S box (S = max(3, filter_order - 2 it)) rescaled to [0, 1], thinned,
   kept above 0.05 it, small holes closed, and the outer shell of what remains added to the
   segment boundaries.
3. Boundaries are cleaned (holes closed, thinned, interiors and small pieces removed), the regions
   between them labelled (4-connected, raster order) and every boundary pixel takes the largest
   label among its 8 neighbours.

Labels are [H, W] int32, dense 1..N. The binary morphology is done with connected-component
labelling rather than max-trees: on binary images both give the same result. The Gaussian pads
with zeros, so the border of a bright image reads as an edge: a constant non-black image gives a
thin border segment around its interior (a black one gives a single segment).
"""

import contextlib
import math
import time

import cv2
import numpy as np
import scipy.ndimage as ndi

# Luminance weights (those of `skimage.color.rgb2gray`), applied in the image's own float dtype.
_LUMA = (0.2125, 0.7154, 0.0721)
_FOUR = ndi.generate_binary_structure(2, 1)
_EIGHT = ndi.generate_binary_structure(2, 2)


def luminance(rgb: np.ndarray) -> np.ndarray:
  """[H, W, 3] float RGB in [0, 1] -> [H, W] float32 luminance (computed in the input's dtype)."""
  return np.asarray(rgb @ np.array(_LUMA, dtype=rgb.dtype), dtype=np.float32)


def canny_gradients(grey: np.ndarray, sigma: float):
  """Sobel gradients of `grey` smoothed by a zero-padded Gaussian of std `sigma`.

  Returns (rows, cols, magnitude), each [H, W] float32: the derivative along axis 0, along axis 1,
  and their Euclidean norm.
  """
  smoothed = ndi.gaussian_filter(grey, sigma, mode='constant', cval=0.0, truncate=4.0)
  rows = ndi.sobel(smoothed, axis=0)
  cols = ndi.sobel(smoothed, axis=1)
  return rows, cols, np.hypot(rows, cols)


# Non-maximum suppression sectors, in the order they are applied (a pixel on a sector boundary
# keeps the verdict of the last sector that holds it). Each entry: whether the sector is
# mostly-horizontal (|d_rows| >= |d_cols|), whether d_rows and d_cols share a sign, and the
# (row, col) offsets of the two neighbours whose magnitudes are interpolated on the positive side
# of the normal (the negative side uses the opposite offsets).
_SECTORS = (
  (True, True, (1, 0), (1, 1)),
  (False, True, (0, 1), (1, 1)),
  (False, False, (0, 1), (-1, 1)),
  (True, False, (-1, 0), (-1, 1)),
)


def non_maximum_suppression(rows, cols, magnitude) -> np.ndarray:
  """[H, W] bool: pixels whose gradient magnitude is a maximum along the gradient direction.

  The magnitude on each side is interpolated between the axis-aligned and the diagonal neighbour.
  Border pixels and pixels with zero magnitude are never maxima.
  """
  h, w = magnitude.shape
  inside = np.zeros((h, w), bool)
  inside[1:-1, 1:-1] = True
  inside &= magnitude > 0
  abs_rows, abs_cols = np.abs(rows), np.abs(cols)
  horizontal = inside & (abs_rows >= abs_cols)
  vertical = inside & (abs_rows <= abs_cols)
  up, down, right, left = rows >= 0, rows <= 0, cols >= 0, cols <= 0
  same_sign = (up & right) | (down & left)
  opposite_sign = (down & right) | (up & left)
  padded = np.pad(magnitude, 1)

  def shifted(dr, dc):
    return padded[1 + dr : 1 + dr + h, 1 + dc : 1 + dc + w]

  with np.errstate(divide='ignore', invalid='ignore'):
    # Interpolation weights of both orientations; only finite where the sector applies.
    weights = {True: abs_cols / abs_rows, False: abs_rows / abs_cols}
  maxima = np.zeros((h, w), bool)
  for is_horizontal, is_same, axis_step, diag_step in _SECTORS:
    pts = (horizontal if is_horizontal else vertical) & (same_sign if is_same else opposite_sign)
    if not pts.any():
      continue
    weight = weights[is_horizontal]
    keep = np.ones((h, w), bool)
    with np.errstate(invalid='ignore'):
      for sign in (1, -1):
        axis_mag = shifted(sign * axis_step[0], sign * axis_step[1])
        diag_mag = shifted(sign * diag_step[0], sign * diag_step[1])
        keep &= diag_mag * weight + axis_mag * (1 - weight) <= magnitude
    maxima[pts] = keep[pts]
  return maxima


def hysteresis(magnitude, maxima, high: float, low: float) -> np.ndarray:
  """[H, W] bool: 8-connected components of `maxima & magnitude >= low` holding a pixel >= high."""
  weak = maxima & (magnitude >= low)
  components, count = ndi.label(weak, _EIGHT)
  if count == 0:
    return weak
  good = np.zeros(count + 1, bool)
  good[components[maxima & (magnitude >= high)]] = True
  good[0] = False
  return good[components]


def box_sum(mask: np.ndarray, size: int) -> np.ndarray:
  """[H, W] float32 count of set pixels in the size x size box around each pixel.

  Past the border the mask is reflected with its edge pixels repeated (d c b a | a b c d).
  """
  ones = np.ones(size, np.float32)
  out = ndi.correlate1d(mask.astype(np.float32), ones, axis=0, mode='reflect')
  return ndi.correlate1d(out, ones, axis=1, mode='reflect')


def rescale(x: np.ndarray) -> np.ndarray:
  """Min-max rescaling of a float32 array to [0, 1] (a constant array is clipped to [0, 1])."""
  lo, hi = float(x.min()), float(x.max())
  if lo == hi:
    return np.clip(x, 0.0, 1.0)
  return (x - lo) / (hi - lo)


def _thinning_tables() -> tuple[np.ndarray, np.ndarray]:
  """Deletion tables of the two Guo-Hall thinning sub-iterations, indexed by neighbour code.

  Bit k-1 of a code is the neighbour x_k, counted counter-clockwise from east (x1 = E, x2 = NE,
  x3 = N, ..., x8 = SE). A pixel is deleted when it joins exactly one 8-connected run of
  neighbours (G1), when 2 <= min(n1, n2) <= 3 (G2), and when it lies on the south-east (first
  sub-iteration, G3) or north-west (second, G3') side of the shape.
  """
  bits = (np.arange(256)[:, None] >> np.arange(8)) & 1 == 1
  x = [None] + [bits[:, k] for k in range(8)] + [bits[:, 0]]
  crossings = sum((~x[2 * i - 1] & (x[2 * i] | x[2 * i + 1])).astype(int) for i in range(1, 5))
  n1 = sum((x[2 * k - 1] | x[2 * k]).astype(int) for k in range(1, 5))
  n2 = sum((x[2 * k] | x[2 * k + 1]).astype(int) for k in range(1, 5))
  low = np.minimum(n1, n2)
  g12 = (crossings == 1) & (low >= 2) & (low <= 3)
  g3 = ~((x[2] | x[3] | ~x[8]) & x[1])
  g3_prime = ~((x[6] | x[7] | ~x[4]) & x[5])
  return g12 & g3, g12 & g3_prime


# Per neighbour code: 1 to keep the pixel, 0 to delete it, one table per sub-iteration.
_KEEP_TABLES = tuple((~table).astype(np.uint8) for table in _thinning_tables())
# Neighbour code weights: bit k-1 for x_k (see `_thinning_tables`), as a correlation kernel.
_NEIGHBOUR_BITS = np.array([[8, 4, 2], [16, 0, 1], [32, 64, 128]], np.float32)


def thin_mask(mask: np.ndarray, size: int) -> np.ndarray:
  """[H, W] bool: `mask` thinned by at most (size - 1) // 2 Guo-Hall passes.

  Thinning runs on a copy padded by `size` pixels with whole-sample reflection so that lines
  touching the border are thinned as if they continued past it; pixels past the padding count
  as unset.
  """
  skeleton = np.pad(mask, size, mode='reflect').astype(np.uint8)
  for _ in range((size - 1) // 2):
    before = cv2.countNonZero(skeleton)
    for keep in _KEEP_TABLES:
      # Codes reach at most 255, so the uint8 correlation is exact.
      codes = cv2.filter2D(skeleton, -1, _NEIGHBOUR_BITS, borderType=cv2.BORDER_CONSTANT)
      skeleton &= cv2.LUT(codes, keep)
    if cv2.countNonZero(skeleton) == before:
      break
  return skeleton[size:-size, size:-size].astype(bool)


def _small_components(mask: np.ndarray, area: int, structure) -> np.ndarray:
  """[H, W] bool: connected components of `mask` with fewer than `area` pixels."""
  components, _ = ndi.label(mask, structure)
  small = np.bincount(components.ravel()) < area
  small[0] = False
  return small[components]


def close_holes(mask: np.ndarray, area: int, structure=_FOUR) -> np.ndarray:
  """Binary area closing: fills background components smaller than `area` pixels."""
  return mask | _small_components(~mask, area, structure)


def open_specks(mask: np.ndarray, area: int, structure=_EIGHT) -> np.ndarray:
  """Binary area opening: clears foreground components smaller than `area` pixels."""
  return mask & ~_small_components(mask, area, structure)


def interior(mask: np.ndarray) -> np.ndarray:
  """[H, W] bool: pixels whose whole 3x3 box, clipped to the image, is set."""
  return ndi.binary_erosion(mask, _EIGHT, border_value=1)


def fill_boundaries(labels: np.ndarray) -> np.ndarray:
  """Gives every 0 pixel of [H, W] int32 `labels` the largest label among its 8 neighbours.

  Neighbours past the border are mirrored (whole-sample). One pass normally fills every
  boundary pixel; the pass repeats for the rare pixels surrounded by boundary, and an image with
  no region at all becomes the single segment 1.
  """
  if not labels.any():
    return np.ones_like(labels)
  labels = labels.copy()
  while True:
    zero = labels == 0
    if not zero.any():
      return labels
    labels[zero] = ndi.maximum_filter(labels, size=3, mode='mirror')[zero]


@contextlib.contextmanager
def _timed(timings: dict | None, stage: str):
  """Adds the seconds spent in the `with` block to `timings[stage]` (nothing without a dict)."""
  start = time.perf_counter()
  yield
  if timings is not None:
    timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - start


def segment(
  rgb: np.ndarray,
  *,
  filter_order: int = 11,
  iterations: int = 4,
  area: int = 20,
  timings: dict | None = None,
) -> np.ndarray:
  """ISEC superpixels of an RGB image.

  Args:
    rgb: [H, W, 3] float RGB in [0, 1] (float32 for frames read as uint8 / 255).
    filter_order: largest edge-density box size, and the thinning size of the clean-up.
    iterations: edge-clustering iterations (one Canny scale each).
    area: area threshold of the final hole closing and speck removal.
    timings: if given, seconds spent per stage are added to it.

  Returns:
    [H, W] int32 labels, dense 1..N, regions numbered in raster order of their first pixel.
  """
  if rgb.ndim != 3 or rgb.shape[2] != 3:
    raise ValueError(f'isec expects an [H, W, 3] RGB image, got shape {rgb.shape}')
  if not np.issubdtype(rgb.dtype, np.floating):
    raise ValueError(
      f'isec expects a float image in [0, 1], got {rgb.dtype}: use '
      'superpixels.compute, which converts uint8'
    )
  if filter_order < 3 or iterations < 1 or area < 1:
    raise ValueError(
      f'isec needs filter_order >= 3, iterations >= 1 and area >= 1, got '
      f'{filter_order}, {iterations}, {area}'
    )
  with _timed(timings, 'luminance'):
    grey = luminance(rgb)
  boundaries = np.zeros(grey.shape, bool)
  for it in range(iterations):
    with _timed(timings, 'canny'):
      rows, cols, magnitude = canny_gradients(grey, 1.0 + it)
      maxima = non_maximum_suppression(rows, cols, magnitude)
      # Python floats on purpose: a float32 magnitude is then compared in float32.
      high = math.exp(0.02 * it) / 10
      edges = hysteresis(magnitude, maxima, high, 0.1 * high)
    size = max(3, filter_order - 2 * it)
    with _timed(timings, 'density'):
      density = rescale(box_sum(edges, size))
    with _timed(timings, 'thin'):
      density = density * thin_mask(density > 0, size)
    with _timed(timings, 'morphology'):
      clusters = close_holes(density > 0.05 * it, 10 + 5 * it)
      boundaries |= clusters & ~interior(clusters)
  with _timed(timings, 'morphology'):
    boundaries = close_holes(boundaries, area)
  with _timed(timings, 'thin'):
    boundaries = thin_mask(boundaries, filter_order)
  with _timed(timings, 'morphology'):
    boundaries = open_specks(boundaries & ~interior(boundaries), area)
  with _timed(timings, 'labels'):
    labels, _ = ndi.label(~boundaries, _FOUR)
    labels = fill_boundaries(labels.astype(np.int32))
  return labels
