"""SLIC superpixels with the settings SHLS trains with (scikit-image's SLIC in Lab space)."""

import numpy as np
from skimage.segmentation import slic

from shls_jax.superpixels.label_io import dense_labels


def segment(
  rgb: np.ndarray, *, n_segments: int = 300, compactness: float = 20.0, sigma: float = 1.0, **kwargs
) -> np.ndarray:
  """SLIC superpixels of an RGB image.

  Args:
    rgb: [H, W, 3] float RGB in [0, 1].
    n_segments: approximate number of superpixels (300 at training time).
    compactness: colour / space trade-off.
    sigma: std of the Gaussian pre-smoothing.
    **kwargs: further `skimage.segmentation.slic` options (e.g. max_num_iter).

  Returns:
    [H, W] int32 labels, dense 1..N.
  """
  if rgb.ndim != 3 or rgb.shape[2] != 3:
    raise ValueError(f'slic expects an [H, W, 3] RGB image, got shape {rgb.shape}')
  if n_segments < 1:
    raise ValueError(f'slic needs n_segments >= 1, got {n_segments}')
  labels = slic(
    rgb,
    n_segments=n_segments,
    compactness=compactness,
    sigma=sigma,
    convert2lab=True,
    channel_axis=-1,
    start_label=1,
    **kwargs,
  )
  return dense_labels(labels)
