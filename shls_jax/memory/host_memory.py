"""The superfeature memory: fit on frame 0, predict a frame, select confident superpixels, update.

State is a `Memory` of plain arrays (per-class superfeatures, per-class centroids, size limits,
the frame-0 object boxes); every function returns new values and changes nothing in place.
Classes are 1..C with 1 = background (C = `num_cls`); per-class lists and score columns are
indexed by class - 1. Superpixel maps are [H, W] int labelled densely 1..N, superfeatures
[N, D] float32 with row n - 1 = superpixel n; boxes are [rmin, rmax, cmin, cmax], max exclusive.
"""

import dataclasses

import numpy as np

from shls_jax.memory import kmeans, knn, rois, rules
from shls_jax.memory.pools import mode_pools


@dataclasses.dataclass(frozen=True)
class Memory:
  """Memory contents.

  Attributes:
    features: per class, [M_c, D] float32 superfeatures in insertion order.
    centroids: per class, [k, D] float32 unit-norm k-means centroids.
    initial_sizes: per class, entries kept from the oldest ones when the class overflows.
    max_size: cap on the entries of each class.
    initial_boxes: [C - 1, 4] int32 tight boxes of objects 2..C in the mask given to the first
      predict after fit (frame 0's annotation); None until then.
  """

  features: tuple[np.ndarray, ...]
  centroids: tuple[np.ndarray, ...]
  initial_sizes: tuple[int, ...]
  max_size: int
  initial_boxes: np.ndarray | None = None

  @property
  def num_cls(self) -> int:
    return len(self.features)


@dataclasses.dataclass(frozen=True)
class MemoryPrediction:
  """What the memory says about one frame.

  Attributes:
    knn_pred: [N] int32 kNN class of each superpixel.
    knn_scores: [N, C] float32 per-class kNN scores.
    cent_scores: [N, C] float32 per-class nearest-centroid scores.
    preseg: [H, W] int32 cleaned pre-segmentation (0 = removed).
    boxes: [C - 1, 4] int32 ROI of objects 2..C.
    attmaps: C - 1 arrays [h_k, w_k, 4] float32, attention maps cropped to the boxes.
  """

  knn_pred: np.ndarray
  knn_scores: np.ndarray
  cent_scores: np.ndarray
  preseg: np.ndarray
  boxes: np.ndarray
  attmaps: list[np.ndarray]


def _check_features(features: np.ndarray, num_spx: int) -> np.ndarray:
  """Returns `features` as [num_spx, D] float32, or raises ValueError."""
  features = np.asarray(features, dtype=np.float32)
  if features.ndim != 2:
    raise ValueError(f'superfeatures must be [N, D]; got shape {features.shape}')
  if features.shape[0] != num_spx:
    raise ValueError(f'{features.shape[0]} superfeatures for {num_spx} superpixels')
  return features


def fit(features: np.ndarray, pools: np.ndarray, num_cls: int) -> Memory:
  """Builds the memory from frame 0.

  Args:
    features: [N, D] float32 superfeatures of frame 0.
    pools: [N] int classes 1..num_cls of the superpixels; every class must occur.
    num_cls: number of classes C, background included.

  Returns:
    A `Memory` with one list per class and its k-means centroids.
  """
  pools = np.asarray(pools)
  if pools.ndim != 1:
    raise ValueError(f'pools must be [N]; got shape {pools.shape}')
  features = _check_features(features, pools.shape[0])
  per_class = tuple(features[pools == cls] for cls in range(1, num_cls + 1))
  absent = [cls for cls, feats in enumerate(per_class, start=1) if not len(feats)]
  if absent:
    raise ValueError(f'classes {absent} have no superpixel in frame 0; cannot build their memory')
  return Memory(
    features=per_class,
    centroids=tuple(kmeans.fit_spherical_kmeans(feats) for feats in per_class),
    initial_sizes=tuple(rules.KEPT_INITIAL_FACTOR * len(feats) for feats in per_class),
    max_size=rules.MEMORY_CAP_FACTOR * features.shape[0],
  )


def _scores(memory: Memory, features: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """kNN class, per-class kNN scores and per-class centroid scores of each superfeature."""
  stored = np.concatenate(memory.features)
  stored_cls = np.repeat(np.arange(1, memory.num_cls + 1), [len(f) for f in memory.features])
  sims, ids = knn.knn_search(stored, features)
  weights = rules.vote_weights()
  neighbour_cls = stored_cls[ids]
  knn_pred = knn.weighted_vote(neighbour_cls, weights, memory.num_cls)
  knn_scores = knn.class_scores(sims, neighbour_cls, weights, memory.num_cls)
  cent_scores = np.stack(
    [kmeans.nearest_centroid_scores(c, features) for c in memory.centroids], axis=1
  )
  return knn_pred, knn_scores, cent_scores


def predict(
  memory: Memory,
  features: np.ndarray,
  spx: np.ndarray,
  prev_mask: np.ndarray,
  annotation: np.ndarray | None = None,
) -> tuple[Memory, MemoryPrediction]:
  """Pre-segmentation, ROIs and attention maps of one frame.

  The first call after `fit` also records the objects' tight boxes in `prev_mask` as their
  minimum ROI size (so it is meant to get frame 0's annotation as `prev_mask`).

  Args:
    memory: the memory.
    features: [N, D] float32 superfeatures of the frame.
    spx: [H, W] int superpixel map of the frame, labels 1..N.
    prev_mask: [H, W] int class map of the previous frame (frame 0: its annotation).
    annotation: optional [H, W] int class map of this frame; when given (training, and frame 0
      at inference) ROIs come from it, widened 0.25 of the extent per side; otherwise from the
      cleaned pre-segmentation, widened 0.15 per side and grown to the minimum size.

  Returns:
    (memory with its initial boxes set, prediction).
  """
  spx = np.asarray(spx)
  if spx.ndim != 2 or spx.min() < 1:
    raise ValueError(f'superpixel map must be [H, W] with labels from 1; got shape {spx.shape}')
  features = _check_features(features, int(spx.max()))
  prev_mask = np.asarray(prev_mask)
  for name, other in (('previous mask', prev_mask), ('annotation', annotation)):
    if other is not None and np.shape(other) != spx.shape:
      raise ValueError(f'{name} {np.shape(other)} and superpixel map {spx.shape} differ in shape')
  objects = range(2, memory.num_cls + 1)
  if memory.initial_boxes is None:
    memory = dataclasses.replace(
      memory, initial_boxes=np.stack([rois.roi(prev_mask == cls, widening=0.0) for cls in objects])
    )

  knn_pred, knn_scores, cent_scores = _scores(memory, features)
  preseg = rois.clean_preseg(knn_pred[spx - 1], prev_mask, memory.num_cls)
  boxes = []
  for cls, min_box in zip(objects, memory.initial_boxes):
    if annotation is not None:
      boxes.append(rois.roi(annotation == cls, widening=rules.ANNOTATION_WIDENING))
      continue
    box = rois.roi(preseg == cls, widening=rules.INFERENCE_WIDENING)
    # A vanished object already gets the full frame; the minimum size applies to found ones.
    if np.any(preseg == cls):
      box = rois.grow_to_min_size(box, min_box, spx.shape)
    boxes.append(box)
  boxes = np.stack(boxes).astype(np.int32)
  return memory, MemoryPrediction(
    knn_pred=knn_pred,
    knn_scores=knn_scores,
    cent_scores=cent_scores,
    preseg=preseg,
    boxes=boxes,
    attmaps=rois.attention_maps(spx, knn_scores, cent_scores, boxes),
  )


def confident_superpixels(
  spx: np.ndarray, seg: np.ndarray, logodds: np.ndarray, ratio: float = rules.CONFIDENCE_RATIO
) -> np.ndarray:
  """Superpixels confident enough to join the memory.

  For each channel j, m_j is the mean of logodds[..., j] over pixels with seg == j + 1 (for the
  background, pixels at the maximum of channel 0 over seg == 1 are left out first). Superpixel n
  is confident when its mean logodds[..., j] >= ratio * m_j for any j with a defined m_j.

  Args:
    spx: [H, W] int superpixel map, labels 1..N.
    seg: [H, W] int reference segmentation (argmax mask at inference, pre-segmentation in
      training), 1 = background.
    logodds: [H, W, C] float aggregated log-odds.
    ratio: fraction of m_j a superpixel's mean must reach.

  Returns:
    [N] bool flags; all False when seg has no background pixel (the memory is then not updated).
  """
  spx = np.asarray(spx)
  logodds = np.asarray(logodds, dtype=np.float64)
  if logodds.ndim != 3 or logodds.shape[:2] != spx.shape or np.shape(seg) != spx.shape:
    raise ValueError(
      f'need spx [H, W], seg [H, W], logodds [H, W, C]; got {spx.shape}, '
      f'{np.shape(seg)}, {logodds.shape}'
    )
  num_spx = int(spx.max())
  background = logodds[..., 0][seg == 1]
  if background.size == 0:
    return np.zeros(num_spx, dtype=bool)
  class_means = np.full(logodds.shape[-1], np.nan)
  unsaturated = background[background < background.max()]
  if unsaturated.size:
    class_means[0] = unsaturated.mean()
  for col in range(1, logodds.shape[-1]):
    values = logodds[..., col][seg == col + 1]
    if values.size:
      class_means[col] = values.mean()
  counts = np.bincount(spx.ravel() - 1, minlength=num_spx)
  spx_means = (
    np.stack(
      [
        np.bincount(spx.ravel() - 1, weights=logodds[..., col].ravel(), minlength=num_spx)
        for col in range(logodds.shape[-1])
      ],
      axis=1,
    )
    / np.maximum(counts, 1)[:, None]
  )
  with np.errstate(invalid='ignore'):
    confident = (spx_means >= ratio * class_means) & (counts > 0)[:, None]
  return confident.any(axis=1)


def update(memory: Memory, features: np.ndarray, pools: np.ndarray) -> Memory:
  """Adds superfeatures to their classes' memories, then refits every class' k-means.

  A class over `max_size` keeps its oldest `initial_sizes` entries and the newest ones up to the
  cap. Every class refits from its previous centroids, whether or not it received entries.

  Args:
    memory: the memory.
    features: [M, D] float32 superfeatures to add.
    pools: [M] int their classes; 0 (or any value outside 1..C) adds nothing.

  Returns:
    The updated memory.
  """
  pools = np.asarray(pools)
  if pools.ndim != 1:
    raise ValueError(f'pools must be [M]; got shape {pools.shape}')
  features = _check_features(features, pools.shape[0])
  if features.shape[1] != memory.features[0].shape[1]:
    raise ValueError(
      f'superfeatures have {features.shape[1]} channels, the memory {memory.features[0].shape[1]}'
    )
  new_features, new_centroids = [], []
  for cls, (stored, centroids, keep) in enumerate(
    zip(memory.features, memory.centroids, memory.initial_sizes), start=1
  ):
    grown = np.concatenate([stored, features[pools == cls]])
    if len(grown) > memory.max_size:
      grown = np.concatenate([grown[:keep], grown[len(grown) - (memory.max_size - keep) :]])
    new_features.append(grown)
    new_centroids.append(kmeans.fit_spherical_kmeans(grown, len(centroids), centroids))
  return dataclasses.replace(memory, features=tuple(new_features), centroids=tuple(new_centroids))


def memorise_confident(
  memory: Memory, features: np.ndarray, spx: np.ndarray, preseg: np.ndarray, confident: np.ndarray
) -> Memory:
  """Updates the memory with the confident superpixels, each under its pre-segmentation pool.

  Args:
    memory: the memory.
    features: [N, D] float32 superfeatures of the frame.
    spx: [H, W] int superpixel map, labels 1..N.
    preseg: [H, W] int pre-segmentation of the frame (0 = removed; such pools add nothing).
    confident: [N] bool flags from `confident_superpixels`.

  Returns:
    The memory, unchanged when nothing is confident.
  """
  confident = np.asarray(confident, dtype=bool)
  if not confident.any():
    return memory
  pools = mode_pools(spx, preseg)
  features = _check_features(features, pools.shape[0])
  if confident.shape != pools.shape:
    raise ValueError(f'{confident.shape[0]} confidence flags for {pools.shape[0]} superpixels')
  return update(memory, features[confident], pools[confident])
