"""Unsupervised salient-object maps, the pseudo-masks of training: no learned weights, no download.

Methods (`METHODS`), each `map(image, **params) -> float32 [H, W] in [0, 1]` on an RGB uint8
image, computed at `max_side` pixels on the longer side and resized back bilinearly. All but
`centre_prior` read the project's SLIC superpixels and their mean CIE Lab colours, with colour
distances d(p, q) and centroids x_p in image fractions:

* Cues, each alone a method:
  * `connectivity`: 1 - backgroundness of robust background detection (Zhu et al., CVPR 2014).
    With geodesic distances g(p, q) (shortest paths over adjacent superpixels, edges weighted by
    d): area(p) = sum_q exp(-g(p, q)^2 / 2 sigma_colour^2), border(p) = that sum over the
    superpixels touching the image border, background(p) = 1 - exp(-(border / sqrt(area))^2 /
    2 sigma_border^2).
  * `barrier`: the minimum barrier distance (Strand et al. 2013; Zhang et al., ICCV 2015) of
    each superpixel to the border ones over the adjacency graph, per Lab channel, summed.
  * `global_contrast`: area-weighted colour distance to every superpixel (Cheng et al. 2015).
  * `centre_prior`: exp(-|x_p - centre|^2 / 2 sigma_centre^2).
* `boundary_connectivity`: (1 - background(p)) x contrast(p) x centre prior, where contrast(p) =
  sum_q d(p, q) exp(-|x_p - x_q|^2 / 2 sigma_spatial^2) background(q).
* `fused`: the cues and `boundary_connectivity` weighted by `w_<name>`, each ranked within the
  image (`fusion='rank'`) or scaled to [0, 1] (`'mean'`), averaged with those weights and
  multiplied by the centre prior to the power `centre_power`.
* `saliency_cut` (default) and `fused_cut`: the map of `boundary_connectivity` or `fused` refined
  by GrabCut (colour models of the image itself): pixels with map >= `foreground` start as
  probable object, those < `background` as sure background, the rest as probable background;
  `iterations` rounds, OpenCV's random state seeded per image so that a map never depends on
  what ran before. The soft map is 0 outside the cut and 0.5 + 0.5 x the map inside it: at 128 it
  is the cut, and the random thresholds of training (`pseudo_sequences.random_binarisation`, which
  also keeps faint non-zero pixels, hence the exact zeros) keep its more salient parts.
* `self_trained` (`FOLDER_METHODS`): a network learnt over a whole folder from its `fused_cut`
  masks (`shls_jax.data.self_training`), run by `pseudo_masks.write_masks`, not image by image;
  its map, resized to the image, is cut as above where `refine`.

`binary_mask(soft, method)` is the documented 0/255 rule: the map >= 0.5 for the cuts
(`CUT_METHODS`); for the others, pixels above twice the map's mean (capped at 0.9) and of them the
two largest connected components. `salient_object(image)` keeps the largest component as one
object: the zero-shot first mask of `segment --mask auto` and `evaluate.py --first_mask auto`.
Parameters of the fusion and of `fused_cut` were chosen on the tune sequences of
`benchmarks/saliency.py`; measured on its report sequences in the README ("Pseudo-masks").
"""

from typing import NamedTuple

import cv2
import numpy as np
from scipy import ndimage, sparse
from scipy.sparse import csgraph

from shls_jax import superpixels

_BASE = {
  'max_side': 427,
  'n_segments': 250,
  'sigma_colour': 10.0,
  'sigma_border': 1.0,
  'sigma_spatial': 0.25,
  'sigma_centre': 0.3,
}
_CUT = {'foreground': 0.5, 'background': 0.2, 'iterations': 10}
# The fused map ranks its superpixels, so its cut thresholds sit higher (`benchmarks/saliency.py
# --tune fused_cut`, on the tune sequences).
_FUSED_CUT = {**_CUT, 'foreground': 0.7, 'background': 0.2}
_FUSION = {
  'w_connectivity': 1.0,
  'w_barrier': 1.0,
  'w_global_contrast': 1.0,
  'w_boundary_connectivity': 1.0,
  'fusion': 'rank',
  'centre_power': 1.0,
}
_SELF_TRAINING = {
  'size': 96,
  'width': 16,
  'rounds': 3,
  'epochs': 10,
  'batch_size': 16,
  'learning_rate': 0.003,
  'target_momentum': 0.5,
  'refine': True,
  'seed': 0,
}
DEFAULTS = {
  'boundary_connectivity': _BASE,
  'saliency_cut': {**_BASE, **_CUT},
  'connectivity': _BASE,
  'barrier': _BASE,
  'global_contrast': _BASE,
  'centre_prior': _BASE,
  'fused': {**_BASE, **_FUSION},
  'fused_cut': {**_BASE, **_FUSION, **_FUSED_CUT},
  'self_trained': {**_BASE, **_FUSION, **_FUSED_CUT, **_SELF_TRAINING},
}
METHODS = tuple(DEFAULTS)
DEFAULT_METHOD = 'saliency_cut'
# Methods that learn over a whole folder (`shls_jax.data.self_training`), not image by image.
FOLDER_METHODS = ('self_trained',)
# Methods whose soft map is 0 outside a GrabCut and 0.5 + 0.5 x map inside.
CUT_METHODS = ('saliency_cut', 'fused_cut', 'self_trained')
# Components of the binary rule of the maps that are not cuts.
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
  return {k: _typed(v, overrides.get(k, v)) for k, v in DEFAULTS[method].items()}


def _typed(default, value):
  """`value` in the type of `default`; booleans also from the strings of a command line."""
  if isinstance(default, bool) and isinstance(value, str):
    if value.lower() not in ('true', 'false', '1', '0'):
      raise ValueError(f'expected a boolean, got {value!r}')
    return value.lower() in ('true', '1')
  return type(default)(value)


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


class _Regions(NamedTuple):
  """The superpixels of one image and what every cue reads of them (N superpixels)."""

  labels: np.ndarray  # [H, W] int, 1..N
  colour: np.ndarray  # [N, 3] mean CIE Lab
  centre: np.ndarray  # [N, 2] centroid (row, column) in image fractions
  area: np.ndarray  # [N] fraction of the image
  colour_dist: np.ndarray  # [N, N] Lab distances
  adjacency: sparse.csr_matrix  # [N, N] 4-connectivity
  border: np.ndarray  # [N] bool, touches the image border


def _regions(image: np.ndarray, n_segments: int) -> _Regions:
  labels = superpixels.compute(image, 'slic', n_segments=n_segments)
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
  border = np.zeros(num, bool)
  for edge in (labels[0], labels[-1], labels[:, 0], labels[:, -1]):
    border[np.unique(edge) - 1] = True
  return _Regions(
    labels=labels,
    colour=colour,
    centre=centre,
    area=np.bincount(labels.ravel() - 1, minlength=num) / labels.size,
    colour_dist=np.linalg.norm(colour[:, None] - colour[None], axis=-1),
    adjacency=_adjacency(labels, num),
    border=border,
  )


def _unit(values: np.ndarray) -> np.ndarray:
  return (values - values.min()) / max(np.ptp(values), 1e-12)


def _centre_prior(r: _Regions, p: dict) -> np.ndarray:
  offset = np.linalg.norm(r.centre - 0.5, axis=1)
  return np.exp(-(offset**2) / (2 * p['sigma_centre'] ** 2))


def _background(r: _Regions, p: dict) -> np.ndarray:
  """[N] boundary-connectivity backgroundness in [0, 1]."""
  # A tiny floor: csgraph drops edges of zero weight.
  geodesic = csgraph.dijkstra(
    r.adjacency.multiply(np.maximum(r.colour_dist, 1e-6)).tocsr(), directed=False
  )
  similar = np.exp(-(geodesic**2) / (2 * p['sigma_colour'] ** 2))
  connectivity = similar[:, r.border].sum(1) / np.sqrt(similar.sum(1))
  return 1 - np.exp(-(connectivity**2) / (2 * p['sigma_border'] ** 2))


def _boundary_connectivity(r: _Regions, p: dict) -> np.ndarray:
  background = _background(r, p)
  spatial = np.linalg.norm(r.centre[:, None] - r.centre[None], axis=-1)
  contrast = (
    r.colour_dist * np.exp(-(spatial**2) / (2 * p['sigma_spatial'] ** 2)) * background[None]
  ).sum(1)
  return _unit((1 - background) * contrast * _centre_prior(r, p))


def _barrier(r: _Regions, p: dict) -> np.ndarray:
  """[N] minimum barrier distance to the border superpixels, summed over the Lab channels."""
  graph = r.adjacency.tocoo()
  source, target = graph.row, graph.col
  total = np.zeros(len(r.colour))
  for channel in r.colour.T:
    high, low = channel.copy(), channel.copy()
    distance = np.where(r.border, 0.0, np.inf)
    # Relaxation in rounds, as the raster scans of FastMBD (Zhang et al. 2015): the barrier of
    # a path is not a sum, so this is the usual approximation, exact on trees.
    for _ in range(len(channel)):
      candidate_high = np.maximum(high[source], channel[target])
      candidate_low = np.minimum(low[source], channel[target])
      candidate = np.where(np.isfinite(distance[source]), candidate_high - candidate_low, np.inf)
      order = np.lexsort((candidate, target))
      first = order[np.unique(target[order], return_index=True)[1]]
      better = candidate[first] < distance[target[first]]
      if not better.any():
        break
      nodes = target[first[better]]
      distance[nodes] = candidate[first[better]]
      high[nodes], low[nodes] = candidate_high[first[better]], candidate_low[first[better]]
    total += distance
  return _unit(total)


def _global_contrast(r: _Regions, p: dict) -> np.ndarray:
  """[N] area-weighted colour contrast to every superpixel (Cheng et al. 2015 without the
  spatial weighting)."""
  return _unit((r.colour_dist * r.area[None]).sum(1))


_CUES = {
  'connectivity': lambda r, p: 1 - _background(r, p),
  'barrier': _barrier,
  'global_contrast': _global_contrast,
  'centre_prior': _centre_prior,
}


def _fused(r: _Regions, p: dict) -> np.ndarray:
  """[N] per-image fusion of the cues: their weighted mean after each is ranked within the
  image (`fusion='rank'`) or scaled to [0, 1] (`'mean'`), times the centre prior raised to
  `centre_power`."""
  cues = {**_CUES, 'boundary_connectivity': _boundary_connectivity}
  total, weights = np.zeros(len(r.colour)), 0.0
  for name in ('connectivity', 'barrier', 'global_contrast', 'boundary_connectivity'):
    weight = p[f'w_{name}']
    if weight:
      cue = cues[name](r, p)
      if p['fusion'] == 'rank':
        cue = np.argsort(np.argsort(cue)) / max(len(cue) - 1, 1)
      total, weights = total + weight * _unit(cue), weights + weight
  return _unit(total / max(weights, 1e-12) * _centre_prior(r, p) ** p['centre_power'])


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


_MAPS = {'boundary_connectivity': _boundary_connectivity, **_CUES, 'fused': _fused}
_MAP_OF_CUT = {'saliency_cut': 'boundary_connectivity', 'fused_cut': 'fused'}


def _check_image(image) -> np.ndarray:
  image = np.asarray(image)
  if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
    raise ValueError(f'need an RGB uint8 image [H, W, 3], got {image.shape} {image.dtype}')
  return image


def _shrink(image: np.ndarray, max_side: int) -> np.ndarray:
  """`image` with its longer side at most `max_side` (area interpolation)."""
  height, width = image.shape[:2]
  scale = min(1.0, max_side / max(height, width))
  if scale == 1:
    return image
  size = (max(1, round(width * scale)), max(1, round(height * scale)))
  return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _grow(soft: np.ndarray, shape) -> np.ndarray:
  """float32 [H, W] in [0, 1]: `soft` resized bilinearly to `shape`."""
  if soft.shape != tuple(shape):
    soft = cv2.resize(soft.astype(np.float32), shape[::-1], interpolation=cv2.INTER_LINEAR)
  return np.clip(soft, 0, 1).astype(np.float32)


def refine(image: np.ndarray, soft: np.ndarray, params: dict) -> np.ndarray:
  """float32 [H, W]: GrabCut of an RGB uint8 image [H, W, 3] seeded by its soft map [H, W]
  (the rule of `saliency_cut`, at `max_side`): 0 outside the cut, 0.5 + 0.5 x map inside."""
  image = _check_image(image)
  small = _shrink(image, params['max_side'])
  soft_small = _grow(soft, small.shape[:2])
  cut = np.where(_grabcut(small, soft_small, params), 0.5 + 0.5 * soft_small, 0.0)
  return _grow(cut, image.shape[:2])


def saliency_map(image: np.ndarray, method: str = DEFAULT_METHOD, params=None) -> np.ndarray:
  """float32 [H, W] soft saliency in [0, 1] of an RGB uint8 image [H, W, 3] (see the module
  docstring); `params` override the method's `DEFAULTS`.

  Raises:
    ValueError: not an RGB uint8 image, unknown method or parameter, or a method of a whole
      folder (`FOLDER_METHODS`: `shls_jax.data.pseudo_masks.write_masks` runs those).
  """
  p = parameters(method, params)
  if method in FOLDER_METHODS:
    raise ValueError(f'{method!r} learns over a folder of images: run it with write_masks')
  image = _check_image(image)
  small = _shrink(image, p['max_side'])
  regions = _regions(small, int(p['n_segments']))
  soft = _MAPS[_MAP_OF_CUT.get(method, method)](regions, p)[regions.labels - 1]
  if method in CUT_METHODS:
    soft = np.where(_grabcut(small, soft, p), 0.5 + 0.5 * soft, 0.0)
  return _grow(soft, image.shape[:2])


def binary_mask(soft: np.ndarray, method: str = DEFAULT_METHOD) -> np.ndarray:
  """[H, W] bool object mask of a soft map of `method` (the rule of the module docstring)."""
  if method not in DEFAULTS:
    raise ValueError(f'unknown pseudo-mask method {method!r}: expected one of {METHODS}')
  if method in CUT_METHODS:
    return soft >= 0.5
  mask = soft > min(2 * float(soft.mean()), 0.9)
  components, count = ndimage.label(mask)
  if count <= _KEPT_COMPONENTS:
    return mask
  sizes = ndimage.sum(mask, components, np.arange(1, count + 1))
  return np.isin(components, np.argsort(sizes)[::-1][:_KEPT_COMPONENTS] + 1)


def salient_object(image: np.ndarray, method: str = DEFAULT_METHOD) -> np.ndarray:
  """[H, W] uint8 zero-shot object mask of an RGB image: 1 on the largest connected component of
  `method`'s binary pseudo-mask (`binary_mask`), 0 elsewhere; all 0 when nothing is salient."""
  mask = binary_mask(saliency_map(image, method), method)
  components, count = ndimage.label(mask)
  if count == 0:
    return np.zeros(mask.shape, np.uint8)
  sizes = ndimage.sum(mask, components, np.arange(1, count + 1))
  return (components == np.argmax(sizes) + 1).astype(np.uint8)
