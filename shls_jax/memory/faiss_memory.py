"""The faiss memory (`FaissMemory`, the reference's): fit on frame 0, predict a frame, memorise its
confident superpixels, add late objects.

State is a `Memory` of plain arrays (per-class superfeatures, per-class centroids, size limits,
the frame-0 object boxes); every function returns new values and changes nothing in place.
Objects given after frame 0 join as new classes (`add_classes`).
Classes are 1..C with 1 = background (C = `num_cls`); per-class lists and score columns are
indexed by class - 1. Superpixel maps are [H, W] int labelled densely 1..N, superfeatures
[N, D] float32 with row n - 1 = superpixel n; boxes are [rmin, rmax, cmin, cmax], max exclusive.
"""

import dataclasses

import numpy as np

from shls_jax.memory import frame_rules, kmeans, knn, rules
from shls_jax.memory.frame_rules import MemoryPrediction, check_features


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
  features = check_features(features, pools.shape[0])
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


def add_classes(
  memory: Memory, features: np.ndarray, pools: np.ndarray, mask: np.ndarray
) -> Memory:
  """New objects join the memory as classes C + 1 .. C' (objects given after frame 0), each from
  its superfeatures as a class is at `fit`: its own entries, k-means centroids and kept size, and
  its minimum ROI size from `mask`; the cap stays frame 0's.

  Args:
    memory: the memory, after a first predict.
    features: [M, D] float32 superfeatures of the new classes.
    pools: [M] int their classes C + 1 .. C', each occurring.
    mask: [H, W] int class map of the frame where they are given.
  """
  features, pools, classes = frame_rules.new_class_entries(memory.num_cls, features, pools)
  per_class = tuple(features[pools == cls] for cls in classes)
  return dataclasses.replace(
    memory,
    features=memory.features + per_class,
    centroids=memory.centroids + tuple(kmeans.fit_spherical_kmeans(f) for f in per_class),
    initial_sizes=memory.initial_sizes
    + tuple(rules.KEPT_INITIAL_FACTOR * len(f) for f in per_class),
    initial_boxes=np.concatenate([memory.initial_boxes, frame_rules.tight_boxes(mask, classes)]),
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
  """Pre-segmentation, ROIs and attention maps of one frame (`frame_rules.prediction_from_scores`).

  The first call after `fit` also records the objects' tight boxes in `prev_mask` as their
  minimum ROI size (so it is meant to get frame 0's annotation as `prev_mask`).

  Args:
    memory: the memory.
    features: [N, D] float32 superfeatures of the frame.
    spx: [H, W] int superpixel map of the frame, labels 1..N.
    prev_mask: [H, W] int class map of the previous frame (frame 0: its annotation).
    annotation: optional [H, W] int class map of this frame (see `prediction_from_scores`).

  Returns:
    (memory with its initial boxes set, prediction).
  """
  features, spx, prev_mask = frame_rules.check_frame(features, spx, prev_mask, annotation)
  memory = frame_rules.with_initial_boxes(memory, prev_mask)
  scores = _scores(memory, features)
  return memory, frame_rules.prediction_from_scores(
    *scores, spx, prev_mask, memory.initial_boxes, annotation
  )


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
  features = check_features(features, pools.shape[0])
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
  entries = frame_rules.confident_entries(features, spx, preseg, confident)
  return memory if entries is None else update(memory, *entries)


class FaissMemory:
  """This module's functions as an `interface.InferenceMemory` (state: `Memory`)."""

  fit = staticmethod(fit)
  predict = staticmethod(predict)
  memorise_confident = staticmethod(memorise_confident)
  add_classes = staticmethod(add_classes)
