"""Resizing with PyTorch's exact conventions: bilinear (`align_corners=False`) and legacy nearest.

All arrays are NHWC-style: spatial axes are the two before the trailing channel axis,
`[..., H, W, C]`. Index and weight tables depend only on static sizes, so they are computed on
the host, in the data's precision as PyTorch computes them, and baked into the traced program as
constants. The network (`model/`) and the object crops (`crops/`) both resize with these.
"""

import functools
from typing import Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np


def check_spatial(x, size: Sequence[int], name: str) -> Tuple[int, int]:
  if x.ndim < 3:
    raise ValueError(f'{name}: expected an array [..., H, W, C], got shape {tuple(x.shape)}')
  if len(size) != 2 or min(int(s) for s in size) < 1:
    raise ValueError(f'{name}: size must be two positive ints (h, w), got {tuple(size)}')
  if min(x.shape[-3], x.shape[-2]) < 1:
    raise ValueError(f'{name}: empty spatial input of shape {tuple(x.shape)}')
  return int(size[0]), int(size[1])


def _linear_table(
  in_size: int, out_size: int, dtype=np.float32
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Source indices (lo, hi) and weight of hi for one axis of a half-pixel bilinear resize.

  Follows PyTorch's `align_corners=False` rule: src = (dst + 0.5) * scale - 0.5 with the scale
  in / out computed in the data's precision (PyTorch's `opmath` type: float32 for float32 input,
  float64 for float64), clamped below at 0; hi = lo + 1 except on the last source row. For
  float32, PyTorch's kernels evaluate the multiply-add fused (one rounding to float32); the
  float64 product of a float32 and a half-integer is exact, so rounding once after the
  subtraction reproduces it.
  """
  dtype = np.dtype(dtype)
  scale = dtype.type(in_size) / dtype.type(out_size)
  src = np.float64(scale) * (np.arange(out_size) + 0.5) - 0.5
  src = np.maximum(src.astype(dtype), dtype.type(0))
  lo = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
  lam = np.clip(src - lo.astype(dtype), dtype.type(0), dtype.type(1))
  hi = lo + (lo < in_size - 1)
  return lo, hi, lam


def _nearest_table(in_size: int, out_size: int) -> np.ndarray:
  """Source index per output index: min(floor(dst * (in / out)), in - 1) in float32."""
  scale = np.float32(in_size) / np.float32(out_size)
  src = np.floor(np.arange(out_size, dtype=np.float32) * scale).astype(np.int64)
  return np.minimum(src, in_size - 1)


@functools.partial(jax.jit, static_argnums=1)
def _resize_bilinear(x, size):
  x0, x1, lx = _linear_table(x.shape[-2], size[1], x.dtype)
  y0, y1, ly = _linear_table(x.shape[-3], size[0], x.dtype)
  lx = jnp.asarray(lx, x.dtype)[:, None]
  ly = jnp.asarray(ly, x.dtype)[:, None, None]
  cols = jnp.take(x, x0, axis=-2) * (1 - lx) + jnp.take(x, x1, axis=-2) * lx
  return jnp.take(cols, y0, axis=-3) * (1 - ly) + jnp.take(cols, y1, axis=-3) * ly


def resize_bilinear(x, size: Sequence[int]) -> jnp.ndarray:
  """`F.interpolate(mode='bilinear', align_corners=False)` without antialias, any scale.

  Args:
    x: [..., H, W, C] float array (numpy or JAX).
    size: static output size (h, w).

  Returns:
    [..., h, w, C] array of x's dtype. Interpolates along W first, then H, as PyTorch does.
  """
  size = check_spatial(x, size, 'resize_bilinear')
  if not jnp.issubdtype(x.dtype, jnp.floating):
    raise ValueError(
      f'resize_bilinear: needs a float array, got {x.dtype}; use resize_nearest for labels'
    )
  return _resize_bilinear(jnp.asarray(x), size)


@functools.partial(jax.jit, static_argnums=1)
def _resize_nearest(x, size):
  x = jnp.take(x, _nearest_table(x.shape[-2], size[1]), axis=-2)
  return jnp.take(x, _nearest_table(x.shape[-3], size[0]), axis=-3)


def resize_nearest(x, size: Sequence[int]) -> jnp.ndarray:
  """PyTorch legacy `F.interpolate(mode='nearest')`, any dtype.

  Args:
    x: [..., H, W, C] array of any dtype (numpy or JAX); a 2-D label map [H, W] is passed as
      `labels[..., None]` and read back with `[..., 0]`.
    size: static output size (h, w).

  Returns:
    [..., h, w, C] array of x's dtype.
  """
  return _resize_nearest(jnp.asarray(x), check_spatial(x, size, 'resize_nearest'))
