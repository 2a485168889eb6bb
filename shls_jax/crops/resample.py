"""Crop resampling with PyTorch's exact conventions: zero padding to a multiple, RoIAlign.

All arrays are NHWC-style: spatial axes are the two before the trailing channel axis,
`[..., H, W, C]`. Index and weight tables depend only on static sizes, so they are computed on
the host, in the data's precision as PyTorch computes them, and baked into the traced program as
constants.
"""

import functools
import math
from typing import Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from shls_jax.ops import resize

Pads = Tuple[Tuple[int, int], Tuple[int, int]]


def pad_amounts(hw: Sequence[int], d: int) -> Pads:
  """((top, bottom), (left, right)) that bring (h, w) up to multiples of d.

  floor(diff / 2) goes top/left and the rest bottom/right.
  """
  if d < 1:
    raise ValueError(f'pad_amounts: the multiple d must be positive, got {d}')
  pads = []
  for n in hw:
    diff = -int(n) % d
    pads.append((diff // 2, diff - diff // 2))
  return tuple(pads)


def pad_to_multiple(x, d: int) -> Tuple[jnp.ndarray, Pads]:
  """Zero-pads the spatial axes of x [..., H, W, C] to multiples of d.

  Returns:
    The padded array [..., Hp, Wp, C] and the pads ((top, bottom), (left, right)).
  """
  if x.ndim < 3:
    raise ValueError(f'pad_to_multiple: expected [..., H, W, C], got shape {tuple(x.shape)}')
  pads = pad_amounts(x.shape[-3:-1], d)
  widths = [(0, 0)] * (x.ndim - 3) + list(pads) + [(0, 0)]
  return jnp.pad(jnp.asarray(x), widths), pads


def unpad(x, pads: Pads) -> jnp.ndarray:
  """Inverse of `pad_to_multiple`: crops [..., Hp, Wp, C] back to [..., H, W, C]."""
  (top, bottom), (left, right) = pads
  return x[..., top : x.shape[-3] - bottom, left : x.shape[-2] - right, :]


def _roi_axis_matrix(start, extent, n_out, count: int, size: int, grid, max_grid: int):
  """Sampling matrix [count, size] of one axis of RoIAlign, before division by the grid count.

  Row p < n_out (n_out may be traced, <= count) sums, over the `grid` (traced, <= max_grid)
  sample positions of bin p of n_out bins, the two linear interpolation weights of each sample
  on the source positions; samples outside [-1, size] get 0, those below 0 clamp to 0 and those
  at or past the last position use the last one alone. Rows from n_out on are 0.
  """
  dtype = start.dtype
  bin_size = extent / n_out
  p = jnp.arange(count, dtype=dtype)[:, None]
  i = jnp.arange(max_grid)
  pos = start + p * bin_size + (i.astype(dtype) + 0.5) * bin_size / grid.astype(dtype)
  valid = (i < grid) & (pos >= -1.0) & (pos <= size) & (p < n_out)
  pos = jnp.maximum(pos, 0.0)
  low = jnp.floor(pos).astype(jnp.int32)
  last = low >= size - 1
  low = jnp.where(last, size - 1, low)
  pos = jnp.where(last, low.astype(dtype), pos)
  high = jnp.where(last, low, low + 1)
  frac = pos - low.astype(dtype)
  weight = jnp.where(valid, 1.0, 0.0).astype(dtype)
  cells = jnp.arange(size)
  hot = ((1 - frac) * weight)[..., None] * (low[..., None] == cells) + (frac * weight)[
    ..., None
  ] * (high[..., None] == cells)
  return hot.sum(axis=1)


def roi_grid(lo: float, hi: float, output_extent: int, spatial_scale: float) -> int:
  """Adaptive sampling count of one RoIAlign axis (aligned=False) for box sides lo..hi.

  A static-shape caller passes its largest possible box extent as (0, extent) to bound the
  count of every box it can produce.
  """
  scale = np.float32(spatial_scale)
  roi = max(np.float32(hi) * scale - np.float32(lo) * scale, np.float32(1.0))
  return max(int(math.ceil(roi / np.float32(output_extent))), 1)


def roi_align(
  features,
  box,
  output_size: Sequence[int],
  spatial_scale: float,
  sampling_ratio: int = -1,
  max_grid: Optional[Tuple[int, int]] = None,
  output_extent=None,
) -> jnp.ndarray:
  """torchvision `roi_align(aligned=False)` of one box on one feature map.

  Args:
    features: [H, W, C] float array.
    box: [rmin, rmax, cmin, cmax] in input-image pixels (exclusive max), Python numbers or a
      traced array; RoIAlign sees it as (x1, y1, x2, y2) = (cmin, rmin, cmax, rmax).
    output_size: static (oh, ow).
    spatial_scale: factor from box coordinates to feature coordinates (1/4 for L4).
    sampling_ratio: samples per bin and axis; <= 0 means adaptive, ceil(roi extent / output).
    max_grid: static upper bound (gh, gw) of the adaptive sample counts. Required when the box is
      traced; when it is too small for the box the result is silently wrong, so derive it from
      the largest box the caller can produce (`roi_grid`). Computed from the box when omitted.
    output_extent: optional (eh, ew), each in 1..(oh, ow), Python ints or traced: RoIAlign of
      the box to (eh, ew) bins written at the top-left of the [oh, ow] output, zeros elsewhere
      (one compilation for any extent). With a traced box, max_grid must then bound the counts
      for the smallest extent used (`roi_grid` with that extent). Default: (oh, ow).

  Returns:
    [oh, ow, C] array: the mean over each bin's sample grid of the bilinear samples.
  """
  if features.ndim != 3:
    raise ValueError(f'roi_align: expected features [H, W, C], got shape {tuple(features.shape)}')
  output_size = resize.check_spatial(features, output_size, 'roi_align')
  if np.shape(box) != (4,):
    raise ValueError(f'roi_align: box must be [rmin, rmax, cmin, cmax], got shape {np.shape(box)}')
  if sampling_ratio > 0:
    max_grid = (sampling_ratio, sampling_ratio)
  elif max_grid is None:
    try:
      rmin, rmax, cmin, cmax = np.asarray(box, np.float32)
    except jax.errors.TracerArrayConversionError as e:
      raise ValueError('roi_align: a traced box needs a static max_grid') from e
    max_grid = (
      roi_grid(rmin, rmax, output_size[0], spatial_scale),
      roi_grid(cmin, cmax, output_size[1], spatial_scale),
    )
  if output_extent is not None:
    output_extent = tuple(jnp.asarray(e, features.dtype) for e in output_extent)
  return _roi_align(
    jnp.asarray(features),
    jnp.asarray(box, features.dtype),
    output_extent,
    output_size,
    float(spatial_scale),
    int(sampling_ratio),
    tuple(int(g) for g in max_grid),
  )


@functools.partial(jax.jit, static_argnums=(3, 4, 5, 6))
def _roi_align(features, box, output_extent, output_size, spatial_scale, sampling_ratio, max_grid):
  dtype = features.dtype
  (oh, ow), (height, width) = output_size, features.shape[:2]
  eh, ew = (oh, ow) if output_extent is None else output_extent
  scale = jnp.asarray(spatial_scale, dtype)
  y1, y2, x1, x2 = box[0] * scale, box[1] * scale, box[2] * scale, box[3] * scale
  roi_h = jnp.maximum(y2 - y1, 1.0)
  roi_w = jnp.maximum(x2 - x1, 1.0)
  if sampling_ratio > 0:
    grid_h = grid_w = jnp.asarray(sampling_ratio)
  else:
    grid_h = jnp.ceil(roi_h / eh).astype(jnp.int32)
    grid_w = jnp.ceil(roi_w / ew).astype(jnp.int32)
  rows = _roi_axis_matrix(y1, roi_h, eh, oh, height, grid_h, max_grid[0])
  cols = _roi_axis_matrix(x1, roi_w, ew, ow, width, grid_w, max_grid[1])
  count = jnp.maximum(grid_h * grid_w, 1).astype(dtype)
  out = jnp.einsum('ph,hwc,qw->pqc', rows, features, cols, precision='highest')
  return out / count
