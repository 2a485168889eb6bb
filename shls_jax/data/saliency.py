"""Unsupervised salient-object maps, the pseudo-masks of training: no learned weights, no download.

Methods (`METHODS`), each `map(image, **params) -> float32 [H, W] in [0, 1]` on an RGB uint8
image, computed at `max_side` pixels on the longer side and resized back bilinearly:

* `boundary_connectivity`: robust background detection (Zhu et al., CVPR 2014) on the project's
  SLIC superpixels. With CIE Lab colour distances d(p, q) and geodesic distances g(p, q)
  (shortest paths over adjacent superpixels, edges weighted by d):
    area(p) = sum_q exp(-g(p, q)^2 / 2 sigma_colour^2), border(p) = that sum over the superpixels
    touching the image border, background(p) = 1 - exp(-(border / sqrt(area))^2 / 2
    sigma_border^2);
  the map is (1 - background(p)) x contrast(p), where contrast(p) = sum_q d(p, q) exp(-|x_p -
  x_q|^2 / 2 sigma_spatial^2) background(q) (x: centroids in image fractions) weighted by a
  centre prior exp(-|x_p - centre|^2 / 2 sigma_centre^2), scaled to [0, 1].
* `saliency_cut` (default): that map refined by GrabCut (colour models of the image itself):
  pixels with map >= `foreground` start as probable object, those < `background` as sure
  background, the rest as probable background; `iterations` rounds, OpenCV's random state
  seeded per image so that a map never depends on what ran before. The soft map is 0 outside
  the cut and 0.5 + 0.5 x (the boundary-connectivity map) inside it: at 128 it is the cut, and
  the random thresholds of training (`pseudo_sequences.random_binarisation`, which also keeps
  faint non-zero pixels, hence the exact zeros) keep its more salient parts.

`binary_mask(soft, method)` is the documented 0/255 rule: the map >= 0.5 for `saliency_cut`
(the cut); for `boundary_connectivity`, pixels above twice the map's mean (capped at 0.9) and of
them the two largest connected components. Measured against the DAVIS-2016 annotations of the
shared sample in the README ("Pseudo-masks"), with `benchmarks/saliency.py`.
"""

import cv2
import numpy as np
from scipy import ndimage, sparse
from scipy.sparse import csgraph

from shls_jax import superpixels

_BOUNDARY_DEFAULTS = {
  'max_side': 427,
  'n_segments': 250,
  'sigma_colour': 10.0,
  'sigma_border': 1.0,
  'sigma_spatial': 0.25,
  'sigma_centre': 0.3,
}
DEFAULTS = {
  'boundary_connectivity': _BOUNDARY_DEFAULTS,
  'saliency_cut': {**_BOUNDARY_DEFAULTS, 'foreground': 0.5, 'background': 0.2, 'iterations': 10},
}
METHODS = tuple(DEFAULTS)
DEFAULT_METHOD = 'saliency_cut'
# Components of the boundary-connectivity binary rule.
_KEPT_COMPONENTS = 2


def parameters(method: str, overrides=None) -> dict:
  """The full parameters of `method`: its `DEFAULTS` with `overrides` (a mapping) applied.

  Raises:
    ValueError: unknown method or parameter.
  """
  if method not in DEFAULTS:
    raise ValueError(f'unknown pseudo-mask method {method!r}: expected one of {METHODS}')
  overrides = dict(overrides or {})
  unknown = sorted(set(overrides) - set(DEFAULTS[method]))
  if unknown:
    raise ValueError(
      f'unknown parameters {unknown} of {method!r}: expected some of {sorted(DEFAULTS[method])}'
    )
  return {k: type(v)(overrides.get(k, v)) for k, v in DEFAULTS[method].items()}


def _adjacency(labels: np.ndarray, num: int) -> sparse.csr_matrix:
  """[N, N] boolean adjacency of 4-connected superpixels (labels 1..N)."""
  pairs = [
    (labels[:, :-1].ravel(), labels[:, 1:].ravel()),
    (labels[:-1, :].ravel(), labels[1:, :].ravel()),
  ]
  rows = np.concatenate([a for a, _ in pairs]) - 1
  cols = np.concatenate([b for _, b in pairs]) - 1
  keep = rows != cols
  adjacency = sparse.coo_matrix(
    (np.ones(keep.sum(), bool), (rows[keep], cols[keep])), shape=(num, num)
  ).tocsr()
  return adjacency + adjacency.T


def _boundary_map(image: np.ndarray, p: dict) -> np.ndarray:
  """float64 [H, W] boundary-connectivity map of an RGB uint8 image at its own size."""
  labels = superpixels.compute(image, 'slic', n_segments=int(p['n_segments']))
  num = int(labels.max())
  index = np.arange(1, num + 1)
  lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float64)
  # OpenCV's 8-bit Lab: L scaled to 0..255, a and b offset by 128; back to CIE units.
  lab[..., 0] *= 100 / 255
  lab[..., 1:] -= 128
  colour = np.stack([ndimage.mean(lab[..., c], labels, index) for c in range(3)], axis=1)
  height, width = labels.shape
  rows, cols = np.mgrid[0:height, 0:width]
  centre = np.stack(
    [ndimage.mean(rows / height, labels, index), ndimage.mean(cols / width, labels, index)], 1
  )
  colour_dist = np.linalg.norm(colour[:, None] - colour[None], axis=-1)
  adjacency = _adjacency(labels, num)
  # A tiny floor: csgraph drops edges of zero weight.
  geodesic = csgraph.dijkstra(
    adjacency.multiply(np.maximum(colour_dist, 1e-6)).tocsr(), directed=False
  )
  similar = np.exp(-(geodesic**2) / (2 * p['sigma_colour'] ** 2))
  border = np.zeros(num, bool)
  for edge in (labels[0], labels[-1], labels[:, 0], labels[:, -1]):
    border[np.unique(edge) - 1] = True
  connectivity = similar[:, border].sum(1) / np.sqrt(similar.sum(1))
  background = 1 - np.exp(-(connectivity**2) / (2 * p['sigma_border'] ** 2))
  spatial = np.linalg.norm(centre[:, None] - centre[None], axis=-1)
  contrast = (
    colour_dist * np.exp(-(spatial**2) / (2 * p['sigma_spatial'] ** 2)) * background[None]
  ).sum(1)
  offset = np.linalg.norm(centre - 0.5, axis=1)
  contrast *= np.exp(-(offset**2) / (2 * p['sigma_centre'] ** 2))
  saliency = (1 - background) * contrast
  saliency = (saliency - saliency.min()) / max(np.ptp(saliency), 1e-12)
  return saliency[labels - 1]


def _grabcut(image: np.ndarray, saliency: np.ndarray, p: dict) -> np.ndarray:
  """[H, W] bool GrabCut of an RGB uint8 image initialised from its saliency map."""
  init = np.full(saliency.shape, cv2.GC_PR_BGD, np.uint8)
  init[saliency >= p['foreground']] = cv2.GC_PR_FGD
  init[saliency < p['background']] = cv2.GC_BGD
  if init.min() == init.max() or not np.any(init == cv2.GC_PR_FGD):
    # GrabCut needs both sides to model.
    return saliency >= p['foreground']
  cv2.setRNGSeed(0)
  models = np.zeros((1, 65)), np.zeros((1, 65))
  try:
    cv2.grabCut(
      cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
      init,
      None,
      *models,
      int(p['iterations']),
      cv2.GC_INIT_WITH_MASK,
    )
  except cv2.error:
    # Too few pixels on one side to fit its colour model: the map's own threshold.
    return saliency >= p['foreground']
  return (init == cv2.GC_FGD) | (init == cv2.GC_PR_FGD)


def saliency_map(image: np.ndarray, method: str = DEFAULT_METHOD, params=None) -> np.ndarray:
  """float32 [H, W] soft saliency in [0, 1] of an RGB uint8 image [H, W, 3] (see the module
  docstring); `params` override the method's `DEFAULTS`."""
  p = parameters(method, params)
  image = np.asarray(image)
  if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
    raise ValueError(f'need an RGB uint8 image [H, W, 3], got {image.shape} {image.dtype}')
  height, width = image.shape[:2]
  scale = min(1.0, p['max_side'] / max(height, width))
  small = image
  if scale < 1:
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
  soft = _boundary_map(small, p)
  if method == 'saliency_cut':
    soft = np.where(_grabcut(small, soft, p), 0.5 + 0.5 * soft, 0.0)
  if scale < 1:
    soft = cv2.resize(soft, (width, height), interpolation=cv2.INTER_LINEAR)
  return np.clip(soft, 0, 1).astype(np.float32)


def binary_mask(soft: np.ndarray, method: str = DEFAULT_METHOD) -> np.ndarray:
  """[H, W] bool object mask of a soft map of `method` (the rule of the module docstring)."""
  if method not in DEFAULTS:
    raise ValueError(f'unknown pseudo-mask method {method!r}: expected one of {METHODS}')
  if method == 'saliency_cut':
    return soft >= 0.5
  mask = soft > min(2 * float(soft.mean()), 0.9)
  components, count = ndimage.label(mask)
  if count <= _KEPT_COMPONENTS:
    return mask
  sizes = ndimage.sum(mask, components, np.arange(1, count + 1))
  return np.isin(components, np.argsort(sizes)[::-1][:_KEPT_COMPONENTS] + 1)
