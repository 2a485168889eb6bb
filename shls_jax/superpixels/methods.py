"""Superpixel methods behind one call: `compute(image, 'slic' | 'isec', **params)`."""

import numpy as np

from shls_jax.superpixels import isec, slic

METHODS = ('slic', 'isec')


def as_rgb(image) -> np.ndarray:
  """Any supported image -> [H, W, 3] float RGB in [0, 1].

  Args:
    image: [H, W, 3] RGB or [H, W, 4] RGBA (alpha dropped) or [H, W] grey (repeated into three
      equal channels); uint8 (divided by 255 in float32) or float in [0, 1] (dtype kept).

  Returns:
    [H, W, 3] float32 (uint8 input) or the input's float dtype.
  """
  image = np.asarray(image)
  if image.ndim == 2:
    image = np.repeat(image[:, :, None], 3, axis=2)
  elif image.ndim == 3 and image.shape[2] == 4:
    image = image[:, :, :3]
  if image.ndim != 3 or image.shape[2] != 3:
    raise ValueError(
      f'expected an [H, W] grey, [H, W, 3] RGB or [H, W, 4] RGBA image, got shape {image.shape}'
    )
  if image.shape[0] == 0 or image.shape[1] == 0:
    raise ValueError(f'image is empty: shape {image.shape}')
  if image.dtype == np.uint8:
    return image.astype(np.float32) / 255.0
  if not np.issubdtype(image.dtype, np.floating):
    raise ValueError(f'image dtype must be uint8 or float in [0, 1], got {image.dtype}')
  if not np.isfinite(image).all():
    raise ValueError('image holds NaN or infinite values')
  if image.min() < 0 or image.max() > 1:
    raise ValueError(f'float image values must lie in [0, 1], got [{image.min()}, {image.max()}]')
  return image


def compute(image, method: str = 'slic', **params) -> np.ndarray:
  """Superpixels of one image.

  Args:
    image: see `as_rgb` (grey, RGB or RGBA; uint8 or float in [0, 1]).
    method: 'slic' or 'isec'.
    **params: keyword arguments of `slic.segment` or `isec.segment` (e.g. n_segments=500).

  Returns:
    [H, W] int32 labels, dense 1..N.
  """
  if method == 'slic':
    return slic.segment(as_rgb(image), **params)
  if method == 'isec':
    return isec.segment(as_rgb(image), **params)
  raise ValueError(f'unknown superpixel method {method!r}: expected one of {METHODS}')
