"""The superfeature memory of training, on device with static shapes (jit/pmap/vmap friendly).

The same math as the host memory (`shls_jax.memory`): cosine kNN with k = 2 and vote weights
0.5**i, per-class kNN scores, per-class spherical k-means with k = 2 and nearest-centroid scores,
ground-truth ROIs, the confidence rule and the update with confident superpixels. Everything
works on fixed capacities: a memory is a buffer of `capacity` slots, an empty slot has class 0.

Deviations from the host memory (all documented where they arise):
  - kNN ties go to the lower buffer slot (`lax.top_k`), not faiss' order; the buffer holds frame 0
    in superpixel order, then each update's block, not the classes concatenated one by one.
  - k-means runs a fixed number of Lloyd iterations from a deterministic initialisation (first
    member of the class and the member least similar to it); it approximates faiss' seeded
    k-means (random initialisation, 10 restarts, 300 iterations, subsampling beyond 256 points per
    centroid, splitting of empty clusters). An empty cluster keeps its previous centroid.
  - The pre-segmentation is the raw kNN map: the host-only convex-hull cleaning is skipped, so the
    pools of the confident update are the superpixels' kNN classes.
  - The per-class cap (10 x the frame-0 count) is not applied: a training sequence of T frames
    adds at most (T - 1) x N entries, below the cap for T <= 11 (`memory_capacity` checks it).

Conventions: classes 1..C (1 = background, 0 = none/padding); per-class arrays have C =
`num_classes` (the static class capacity) columns, column j = class j + 1; superpixel arrays have
a static capacity N, row n - 1 = superpixel n; superpixel maps are [H, W] int32 with labels 1..N
(0 = no superpixel); boxes are int32 [rmin, rmax, cmin, cmax] with exclusive max.
"""

from typing import NamedTuple, Tuple

import jax
import jax.numpy as jnp

from shls_jax.memory import rules
from shls_jax.model.superfeatures import l2_normalise, segment_means

# The host memory caps each class at this many multiples of the frame-0 count.
_MAX_FRAMES = rules.MEMORY_CAP_FACTOR + 1


class TrainingMemory(NamedTuple):
  """Memory contents; M = capacity, D = superfeature size, C = class capacity.

  Attributes:
    features: [M, D] float32 L2-normalised superfeatures (zero rows in empty slots).
    labels: [M] int32 class of each slot, 0 = empty.
    centroids: [C, 2, D] float32 unit-norm k-means centroids per class (zero for absent classes).
  """

  features: jax.Array
  labels: jax.Array
  centroids: jax.Array


def memory_capacity(num_segments: int, num_frames: int) -> int:
  """Slots a training memory needs: frame 0 plus one update block per frame 1..T-2."""
  if not 2 <= num_frames <= _MAX_FRAMES:
    raise ValueError(
      f'training sequences need 2..{_MAX_FRAMES} frames (the per-class memory '
      f'cap is not applied on device), got {num_frames}'
    )
  return num_segments * max(num_frames - 1, 1)


def initial_centroids(features: jax.Array, labels: jax.Array, num_classes: int) -> jax.Array:
  """Deterministic k-means start [C, 2, D]: per class, its first member and the member least
  similar to that one (ties: first such member). A class with one member gets it twice (the host
  pads with the mean, which is that member); an absent class gets zeros.

  features: [M, D] unit rows; labels: [M] int32 (0 = empty).
  """

  def one_class(cls):
    member = labels == cls
    first = features[jnp.argmax(member)]
    sims = jnp.where(member, features @ first, jnp.inf)
    second = features[jnp.argmin(sims)]
    present = jnp.any(member)
    return jnp.where(present, jnp.stack([first, second]), 0.0)

  return jax.vmap(one_class)(jnp.arange(1, num_classes + 1))


def fit_kmeans(
  features: jax.Array, labels: jax.Array, init: jax.Array, iterations: int
) -> jax.Array:
  """Spherical k-means of every class, `iterations` Lloyd steps from `init`.

  Args:
    features: [M, D] float32 unit rows.
    labels: [M] int32 classes (0 = empty slot, in no class).
    init: [C, 2, D] starting centroids (`initial_centroids`, or the previous fit for a refit).
    iterations: static number of assignment/update steps.

  Returns:
    [C, 2, D] float32 unit-norm centroids; assignment ties go to centroid 0; a centroid without
    points keeps its value.
  """
  num_classes = init.shape[0]

  def step(_, centroids):
    sims = jnp.einsum('md,ckd->mck', features, centroids)
    assign = jax.nn.one_hot(jnp.argmax(sims, axis=-1), centroids.shape[1])
    member = labels[:, None] == jnp.arange(1, num_classes + 1)[None, :]
    weights = assign * member[..., None]
    sums = jnp.einsum('mck,md->ckd', weights, features)
    counts = jnp.sum(weights, axis=0)
    return jnp.where(counts[..., None] > 0, l2_normalise(sums), centroids)

  return jax.lax.fori_loop(0, iterations, step, init)


def fit(
  superfeatures: jax.Array, pools: jax.Array, *, capacity: int, num_classes: int, iterations: int
) -> TrainingMemory:
  """Memory of frame 0.

  Args:
    superfeatures: [N, D] float superfeatures of frame 0 (gradients are stopped here).
    pools: [N] int32 classes 1..C, 0 for padded superpixels.
    capacity: static slots M >= N (`memory_capacity`).
    num_classes: static class capacity C.
    iterations: Lloyd iterations of the k-means.
  """
  n, d = superfeatures.shape
  if capacity < n:
    raise ValueError(f'memory capacity {capacity} is below the {n} superpixel slots')
  features = l2_normalise(jax.lax.stop_gradient(superfeatures).astype(jnp.float32))
  features = jnp.zeros((capacity, d), jnp.float32).at[:n].set(features)
  labels = jnp.zeros((capacity,), jnp.int32).at[:n].set(pools.astype(jnp.int32))
  centroids = fit_kmeans(
    features, labels, initial_centroids(features, labels, num_classes), iterations
  )
  return TrainingMemory(features, labels, centroids)


def add(
  memory: TrainingMemory, superfeatures: jax.Array, pools: jax.Array, *, offset, iterations: int
) -> TrainingMemory:
  """Writes superfeatures [N, D] with classes pools [N] (0 = empty slot) into slots
  offset..offset + N - 1, then refits every class' k-means from its centroids.

  offset: int, or a traced int32 scalar (then not checked; `lax.dynamic_update_slice` clamps it
  so that the block fits).
  """
  n = superfeatures.shape[0]
  if isinstance(offset, int) and offset + n > memory.labels.shape[0]:
    raise ValueError(
      f'slots {offset}..{offset + n - 1} exceed the memory capacity {memory.labels.shape[0]}'
    )
  keep = pools > 0
  new = jnp.where(keep[:, None], l2_normalise(jax.lax.stop_gradient(superfeatures)), 0.0)
  features = jax.lax.dynamic_update_slice(memory.features, new.astype(jnp.float32), (offset, 0))
  labels = jax.lax.dynamic_update_slice(
    memory.labels, jnp.where(keep, pools, 0).astype(jnp.int32), (offset,)
  )
  return TrainingMemory(
    features, labels, fit_kmeans(features, labels, memory.centroids, iterations)
  )


def knn_predict(memory: TrainingMemory, queries: jax.Array) -> Tuple[jax.Array, jax.Array]:
  """kNN class and per-class kNN scores of queries [N, D] (cosine, k = 2, weights 0.5**i).

  The memory must hold at least 2 entries. Ties in similarity go to the lower slot. The winning
  class is the nearest neighbour's (weights (1, 0.5) never tie), as `knn.weighted_vote`.

  Returns:
    (pred [N] int32 class, scores [N, C] float32 with
    scores[:, j] = sum_i w_i s_(i) / sum(w), s_(i) the i-th largest of {sim if the neighbour is
    of class j + 1 else 0}, as `knn.class_scores`).
  """
  num_classes = memory.centroids.shape[0]
  sims = l2_normalise(queries.astype(jnp.float32)) @ memory.features.T
  sims = jnp.where(memory.labels[None, :] > 0, sims, -jnp.inf)
  top, slots = jax.lax.top_k(sims, rules.NUM_NEIGHBOURS)
  neighbour_cls = memory.labels[slots]
  weights = jnp.asarray(rules.vote_weights())
  classes = jnp.arange(1, num_classes + 1)
  own = neighbour_cls[:, None, :] == classes[None, :, None]
  votes = jnp.sum(own * weights, axis=-1)
  pred = (jnp.argmax(votes, axis=-1) + 1).astype(jnp.int32)
  ranked = -jnp.sort(-jnp.where(own, top[:, None, :], 0.0), axis=-1)
  return pred, jnp.sum(ranked * weights, axis=-1) / jnp.sum(weights)


def centroid_scores(memory: TrainingMemory, queries: jax.Array) -> jax.Array:
  """[N, C] float32 inner product of each normalised query [N, D] with its class' nearest
  centroid (0 for classes without centroids, whose rows are zero)."""
  sims = jnp.einsum('nd,ckd->nck', l2_normalise(queries.astype(jnp.float32)), memory.centroids)
  return jnp.max(sims, axis=-1)


def pixel_map(table: jax.Array, spx: jax.Array) -> jax.Array:
  """Per-superpixel rows table [N, ...] written on their pixels: [H, W, ...]; pixels of label 0
  get zeros."""
  rows = jnp.take(table, jnp.clip(spx - 1, 0, table.shape[0] - 1), axis=0)
  inside = (spx > 0).reshape(spx.shape + (1,) * (table.ndim - 1))
  return jnp.where(inside, rows, jnp.zeros((), table.dtype))


def attention_table(
  knn_scores: jax.Array, cent_scores: jax.Array, class_valid: jax.Array
) -> jax.Array:
  """Per-superpixel attention channels of objects 2..C: [N, C - 1, 4].

  Channels as `rois.attention_maps`: kNN score of the object, max kNN score of the other valid
  classes (background included), centroid score of the object, max centroid score of the others.
  knn_scores, cent_scores: [N, C]; class_valid: [C] bool (classes 1..num_cls).
  """
  num_classes = knn_scores.shape[1]
  eye = jnp.eye(num_classes, dtype=bool)[1:]
  others = ~eye & class_valid[None, :]

  def other_max(scores):
    return jnp.max(jnp.where(others[None], scores[:, None, :], -jnp.inf), axis=-1)

  return jnp.stack(
    [knn_scores[:, 1:], other_max(knn_scores), cent_scores[:, 1:], other_max(cent_scores)], axis=-1
  )


def annotation_box(
  mask: jax.Array, widening: float = rules.ANNOTATION_WIDENING, min_extent: float = rules.MIN_EXTENT
) -> jax.Array:
  """Traced `rois.roi`: box of mask [H, W] bool widened by floor(widening x extent) per side,
  clipped, an axis shorter than min_extent of the frame made full-range; empty -> full frame.

  Returns int32 [4] [rmin, rmax, cmin, cmax].
  """
  box = []
  for axis, size in ((1, mask.shape[0]), (0, mask.shape[1])):
    hit = jnp.any(mask, axis=axis)
    pos = jnp.arange(size)
    lo = jnp.min(jnp.where(hit, pos, size))
    hi = jnp.max(jnp.where(hit, pos, -1)) + 1
    add = jnp.floor((hi - lo).astype(jnp.float32) * widening).astype(jnp.int32)
    lo, hi = jnp.maximum(lo - add, 0), jnp.minimum(hi + add, size)
    full = ~jnp.any(hit) | ((hi - lo).astype(jnp.float32) < min_extent * size)
    box += [jnp.where(full, 0, lo), jnp.where(full, size, hi)]
  return jnp.stack(box).astype(jnp.int32)


def confident_superpixels(
  spx: jax.Array,
  seg: jax.Array,
  logodds: jax.Array,
  *,
  num_segments: int,
  ratio: float = rules.CONFIDENCE_RATIO,
) -> jax.Array:
  """Traced `frame_rules.confident_superpixels`.

  Args:
    spx: [H, W] int32 superpixel map, labels 1..num_segments (0 = none).
    seg: [H, W] int32 reference segmentation, 1 = background.
    logodds: [H, W, C] float aggregated log-odds.
    num_segments: static superpixel capacity N.
    ratio: fraction of a class' mean a superpixel's mean must reach.

  Returns:
    [N] bool; all False when seg has no background pixel. Channel j counts only when seg has
    pixels of class j + 1 (for the background, outside the maximum of channel 0 over them).
  """
  logodds = jax.lax.stop_gradient(logodds).astype(jnp.float32)
  num_channels = logodds.shape[-1]
  in_cls = seg[..., None] == jnp.arange(1, num_channels + 1)
  background = in_cls[..., 0]
  bg_max = jnp.max(jnp.where(background, logodds[..., 0], -jnp.inf))
  in_cls = in_cls.at[..., 0].set(background & (logodds[..., 0] < bg_max))
  counts = jnp.sum(in_cls, axis=(0, 1))
  class_means = jnp.sum(jnp.where(in_cls, logodds, 0.0), axis=(0, 1)) / jnp.maximum(counts, 1)
  spx_means, spx_counts = segment_means(logodds[None], spx[None], num_segments)
  confident = (spx_means[0] >= ratio * class_means) & (counts > 0)
  return jnp.any(confident, axis=-1) & (spx_counts[0] > 0) & jnp.any(background)
