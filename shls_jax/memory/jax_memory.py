"""The inference memory in JAX (`JaxMemory`, an `interface.InferenceMemory`): the faiss memory's
rules, its kNN search and k-means in JAX (`training_memory`'s kernels), so that no faiss is needed
and the heavy work runs on the accelerator.

`fit`, `predict`, `memorise_confident` and `add_classes` take and return what `faiss_memory`'s
do, the state aside (`CappedMemory` here, `faiss_memory.Memory` there). Shared exactly: the frame
rules (`frame_rules`: pre-segmentation cleaning, ROIs, attention maps, confident superpixels), the
pools of the confident update and the per-class cap (10x the frame-0 superfeature count per class;
on overflow a class keeps its oldest 5x its own frame-0 count and the newest entries: here a ring
over the slots past the kept ones, holding the same entries as the host's list).

Deviations (their cost is measured in the README, "Memory backends"):
  - kNN ties go to the lower slot (`lax.top_k`), not faiss' order.
  - k-means: `iterations` Lloyd steps from `training_memory.initial_centroids` at fit, and from the
    previous centroids at each refit, where faiss runs 300 iterations with 10 seeded restarts.

Shapes stay static per video: each class has `slots` = the cap rounded up to `SLOT_BUCKET`;
queries are padded to a multiple of `QUERY_BUCKET`, new entries to `QUERY_BUCKET` as well.
"""

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from shls_jax.memory import frame_rules, rules, training_memory
from shls_jax.memory.frame_rules import MemoryPrediction
from shls_jax.model.superfeatures import l2_normalise

SLOT_BUCKET = 2048
QUERY_BUCKET = 256


@dataclasses.dataclass(frozen=True)
class CappedMemory:
  """Memory contents; C classes, S slots per class, D channels.

  Attributes:
    features: [C, S, D] float32 unit-norm superfeatures, zero in empty slots.
    filled: [C, S] bool occupied slots.
    centroids: [C, k, D] float32 unit-norm k-means centroids.
    added: per class, entries ever added (frame 0 included): where the next one goes.
    initial_sizes: per class, entries kept from the oldest ones when the class overflows.
    max_size: cap on the entries of each class (<= S).
    iterations: Lloyd iterations of each k-means fit.
    initial_boxes: [C - 1, 4] int32 tight boxes of objects 2..C in the mask given to the first
      predict after fit; None until then.
  """

  features: jax.Array
  filled: jax.Array
  centroids: jax.Array
  added: tuple[int, ...]
  initial_sizes: tuple[int, ...]
  max_size: int
  iterations: int
  initial_boxes: np.ndarray | None = None

  @property
  def num_cls(self) -> int:
    return len(self.added)


def _round_up(n: int, multiple: int) -> int:
  return -(-n // multiple) * multiple


def _flat(features: jax.Array, filled: jax.Array) -> tuple[jax.Array, jax.Array]:
  """[C * S, D] features and [C * S] labels (class c + 1, 0 for an empty slot)."""
  num_cls, slots, dim = features.shape
  labels = jnp.where(filled, jnp.arange(1, num_cls + 1)[:, None], 0).reshape(-1)
  return features.reshape(num_cls * slots, dim), labels.astype(jnp.int32)


@functools.partial(jax.jit, static_argnames='iterations')
def _normalise_and_fit(features, filled, iterations):
  """(unit rows [C, S, D], centroids [C, k, D]) of frame 0's raw rows (zeros stay zeros)."""
  features = l2_normalise(features)
  flat, labels = _flat(features, filled)
  init = training_memory.initial_centroids(flat, labels, features.shape[0])
  return features, training_memory.fit_kmeans(flat, labels, init, iterations)


def scores(state: 'DeviceState', queries: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Traced memory scores of queries [N, D]: (kNN class [N] int32, kNN scores [N, C], centroid
  scores [N, C])."""
  flat, labels = _flat(state.features, state.filled)
  memory = training_memory.TrainingMemory(flat, labels, state.centroids)
  knn_pred, knn_scores = training_memory.knn_predict(memory, queries)
  return knn_pred, knn_scores, training_memory.centroid_scores(memory, queries)


_scores = jax.jit(scores)


class DeviceState(NamedTuple):
  """A `CappedMemory` as device arrays only, for traced frame steps (C classes, S slots).

  Attributes:
    features, filled, centroids: as `CappedMemory`.
    added: [C] int32 entries ever added per class.
    initial_sizes: [C] int32 entries kept from the oldest ones on overflow.
    max_size: int32 scalar cap per class.
    initial_boxes: [C - 1, 4] int32 minimum ROI sizes of the objects.
  """

  features: jax.Array
  filled: jax.Array
  centroids: jax.Array
  added: jax.Array
  initial_sizes: jax.Array
  max_size: jax.Array
  initial_boxes: jax.Array


def device_state(memory: CappedMemory) -> DeviceState:
  """The memory's state on the device (its initial boxes must be set: after a first predict)."""
  if memory.initial_boxes is None:
    raise ValueError('the memory has no initial boxes yet: predict frame 0 first')
  return DeviceState(
    memory.features,
    memory.filled,
    memory.centroids,
    jnp.asarray(memory.added, jnp.int32),
    jnp.asarray(memory.initial_sizes, jnp.int32),
    jnp.asarray(memory.max_size, jnp.int32),
    jnp.asarray(memory.initial_boxes, jnp.int32),
  )


def ring_slot(entry, total, keep, max_size):
  """Slot (within its class) of entry `entry` (0-based over the class' whole history) once the
  class has had `total` entries; -1 when a later entry has overwritten it. numpy or traced.

  Entry g sits in slot g while g < keep, then in keep + (g - keep) mod (max_size - keep): the
  slots always hold the oldest `keep` entries and the newest `max_size - keep`, those of
  `faiss_memory.update`.
  """
  ring = max_size - keep
  slot = jnp.where(entry < keep, entry, keep + (entry - keep) % ring)
  return jnp.where((entry < keep) | (entry >= total - ring), slot, -1)


def add_entries(state: DeviceState, rows: jax.Array, pools: jax.Array, iterations: int):
  """Traced `update`: rows [M, D] join classes pools [M] (0 or beyond C: nothing) under the cap,
  in row order within each class; then every class' k-means is refitted from its centroids,
  unless nothing joined (the state is then returned as it was)."""
  num_cls, num_slots, dim = state.features.shape
  member = pools[:, None] == jnp.arange(1, num_cls + 1)
  counts = jnp.sum(member, axis=0).astype(jnp.int32)
  rank = jnp.sum(jnp.where(member, jnp.cumsum(member, axis=0) - 1, 0), axis=1)
  cls = jnp.clip(pools - 1, 0, num_cls - 1)
  slot = ring_slot(
    state.added[cls] + rank,
    state.added[cls] + counts[cls],
    state.initial_sizes[cls],
    state.max_size,
  )
  joins = jnp.any(member, axis=1) & (slot >= 0)
  # Rows that do not join go to a slot past the end: dropped.
  target = jnp.where(joins, cls * num_slots + slot, num_cls * num_slots)
  flat = state.features.reshape(-1, dim).at[target].set(l2_normalise(rows), mode='drop')
  occupied = state.filled.reshape(-1).at[target].set(True, mode='drop')
  features, filled = flat.reshape(num_cls, num_slots, dim), occupied.reshape(num_cls, num_slots)
  flat_features, labels = _flat(features, filled)
  centroids = training_memory.fit_kmeans(flat_features, labels, state.centroids, iterations)
  changed = jnp.any(counts > 0)
  return state._replace(
    features=features,
    filled=filled,
    centroids=jnp.where(changed, centroids, state.centroids),
    added=state.added + counts,
  )


_add_entries = jax.jit(add_entries, static_argnames='iterations')


def _padded(rows: np.ndarray, multiple: int) -> np.ndarray:
  return np.pad(rows, ((0, _round_up(len(rows), multiple) - len(rows)), (0, 0)))


def fit(features: np.ndarray, pools: np.ndarray, num_cls: int, iterations: int) -> CappedMemory:
  """Builds the memory from frame 0 (as `faiss_memory.fit`).

  Args:
    features: [N, D] float32 superfeatures of frame 0.
    pools: [N] int classes 1..num_cls of the superpixels; every class must occur.
    num_cls: number of classes C, background included.
    iterations: Lloyd iterations of every k-means fit of this memory
      (`config.inference.device_kmeans_iterations`).
  """
  pools = np.asarray(pools)
  if pools.ndim != 1:
    raise ValueError(f'pools must be [N]; got shape {pools.shape}')
  features = frame_rules.check_features(features, pools.shape[0])
  counts = [int(np.sum(pools == cls)) for cls in range(1, num_cls + 1)]
  absent = [cls for cls, count in enumerate(counts, start=1) if not count]
  if absent:
    raise ValueError(f'classes {absent} have no superpixel in frame 0; cannot build their memory')
  max_size = rules.MEMORY_CAP_FACTOR * features.shape[0]
  slots = _round_up(max_size, SLOT_BUCKET)
  stored = np.zeros((num_cls, slots, features.shape[1]), np.float32)
  filled = np.zeros((num_cls, slots), bool)
  for cls, count in enumerate(counts, start=1):
    stored[cls - 1, :count] = features[pools == cls]
    filled[cls - 1, :count] = True
  filled = jnp.asarray(filled)
  stored, centroids = _normalise_and_fit(jnp.asarray(stored), filled, iterations)
  return CappedMemory(
    features=stored,
    filled=filled,
    centroids=centroids,
    added=tuple(counts),
    initial_sizes=tuple(rules.KEPT_INITIAL_FACTOR * count for count in counts),
    max_size=max_size,
    iterations=iterations,
  )


def add_classes(
  memory: CappedMemory, features: np.ndarray, pools: np.ndarray, mask: np.ndarray
) -> CappedMemory:
  """As `faiss_memory.add_classes`: classes C + 1 .. C' join with their superfeatures [M, D],
  pools [M] and minimum ROI sizes from the class map `mask`. The class axis grows: the memory's
  programs compile once more."""
  features, pools, classes = frame_rules.new_class_entries(memory.num_cls, features, pools)
  num_slots = memory.features.shape[1]
  counts = [int(np.sum(pools == cls)) for cls in classes]
  stored = np.zeros((len(classes), num_slots, features.shape[1]), np.float32)
  filled = np.zeros((len(classes), num_slots), bool)
  for row, (cls, count) in enumerate(zip(classes, counts)):
    stored[row, :count] = features[pools == cls]
    filled[row, :count] = True
  filled = jnp.asarray(filled)
  stored, centroids = _normalise_and_fit(jnp.asarray(stored), filled, memory.iterations)
  return dataclasses.replace(
    memory,
    features=jnp.concatenate([memory.features, stored]),
    filled=jnp.concatenate([memory.filled, filled]),
    centroids=jnp.concatenate([memory.centroids, centroids]),
    added=memory.added + tuple(counts),
    initial_sizes=memory.initial_sizes + tuple(rules.KEPT_INITIAL_FACTOR * c for c in counts),
    initial_boxes=np.concatenate([memory.initial_boxes, frame_rules.tight_boxes(mask, classes)]),
  )


def predict(
  memory: CappedMemory,
  features: np.ndarray,
  spx: np.ndarray,
  prev_mask: np.ndarray,
  annotation: np.ndarray | None = None,
) -> tuple[CappedMemory, MemoryPrediction]:
  """As `faiss_memory.predict`: the kNN and centroid scores on device, the rules on the host."""
  features, spx, prev_mask = frame_rules.check_frame(features, spx, prev_mask, annotation)
  memory = frame_rules.with_initial_boxes(memory, prev_mask)
  num = features.shape[0]
  knn_pred, knn_scores, cent_scores = jax.device_get(
    _scores(device_state(memory), jnp.asarray(_padded(features, QUERY_BUCKET)))
  )
  return memory, frame_rules.prediction_from_scores(
    np.asarray(knn_pred[:num]),
    np.asarray(knn_scores[:num]),
    np.asarray(cent_scores[:num]),
    spx,
    prev_mask,
    memory.initial_boxes,
    annotation,
  )


def update(memory: CappedMemory, features: np.ndarray, pools: np.ndarray) -> CappedMemory:
  """As `faiss_memory.update`: adds superfeatures [M, D] to their classes pools [M] (0 or any value
  outside 1..C adds nothing) under the cap, then refits every class' k-means from its centroids.
  """
  pools = np.asarray(pools)
  if pools.ndim != 1:
    raise ValueError(f'pools must be [M]; got shape {pools.shape}')
  features = frame_rules.check_features(features, pools.shape[0])
  dim = memory.features.shape[2]
  if features.shape[1] != dim:
    raise ValueError(f'superfeatures have {features.shape[1]} channels, the memory {dim}')
  rows = _padded(features, QUERY_BUCKET)
  pools = np.pad(pools.astype(np.int32), (0, len(rows) - len(pools)))
  state = _add_entries(
    device_state(dataclasses.replace(memory, initial_boxes=np.zeros((0, 4), np.int32))),
    jnp.asarray(rows),
    jnp.asarray(pools),
    iterations=memory.iterations,
  )
  return dataclasses.replace(
    memory,
    features=state.features,
    filled=state.filled,
    centroids=state.centroids,
    added=tuple(int(n) for n in jax.device_get(state.added)),
  )


def memorise_confident(
  memory: CappedMemory,
  features: np.ndarray,
  spx: np.ndarray,
  preseg: np.ndarray,
  confident: np.ndarray,
) -> CappedMemory:
  """As `faiss_memory.memorise_confident`: the confident superpixels join under their
  pre-segmentation pools; the memory is unchanged when nothing is confident."""
  entries = frame_rules.confident_entries(features, spx, preseg, confident)
  return memory if entries is None else update(memory, *entries)


@dataclasses.dataclass(frozen=True)
class JaxMemory:
  """This module's functions as an `interface.InferenceMemory` (state: `CappedMemory`), with
  `iterations` Lloyd steps per k-means fit."""

  iterations: int

  def fit(self, features: np.ndarray, pools: np.ndarray, num_cls: int) -> CappedMemory:
    return fit(features, pools, num_cls, self.iterations)

  predict = staticmethod(predict)
  memorise_confident = staticmethod(memorise_confident)
  add_classes = staticmethod(add_classes)
