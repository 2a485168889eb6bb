"""Training losses: NT-Xent on superfeatures over sampled triplets, and pixel-wise cross-entropy.

`ntxent_loss` equals pytorch-metric-learning's `NTXentLoss(temperature)` with cosine similarity
and the default mean reduction, fed an (anchor, positive, negative) index tuple: every triplet
gives one positive pair (anchor, positive) and one negative pair (anchor, negative), pairs are
kept with repetition, and each positive pair is contrasted with all negative pairs that share its
anchor. `random_triplets` draws such tuples on the host.

The jitted training step uses the static-shape form (`frame_ntxent`): triplets drawn on device
(`sample_triplets`, distributed as `random_triplets`) or all pairs, padded rows masked out
(`masked_ntxent`).
"""

from typing import Tuple

import jax
import jax.numpy as jnp
import numpy as np

from shls_jax.model.superfeatures import l2_normalise

NTXENT_MODES = ('sampled', 'all_pairs')
TEMPERATURE = 0.07
TRIPLETS_PER_ANCHOR = 16


def ntxent_loss(features, labels, triplets, temperature: float = 0.07) -> jnp.ndarray:
  """NT-Xent loss of features over sampled triplets.

  Args:
    features: [N, S] float superfeatures.
    labels: [N] int class of each row (1 = background); only checked against N, since the
      triplets already encode the classes.
    triplets: [3, M] int (anchor, positive, negative) row indices, pairs used with repetition.
    temperature: softmax temperature.

  Returns:
    Scalar float: mean over the M positive pairs of
    -log(exp(s_ap / t) / (exp(s_ap / t) + sum_n exp(s_an / t)) + tiny), where n runs over the
    negatives of every triplet with the same anchor and s is the cosine similarity. 0 when
    M <= 1 (the reference library returns 0 for tuples of at most one element).
  """
  features = jnp.asarray(features)
  if features.ndim != 2:
    raise ValueError(f'ntxent_loss: features must be [N, S], got shape {features.shape}')
  if np.shape(labels) != features.shape[:1]:
    raise ValueError(
      f'ntxent_loss: labels shape {np.shape(labels)} does not match '
      f'{features.shape[0]} feature rows'
    )
  if np.ndim(triplets) != 2 or np.shape(triplets)[0] != 3:
    raise ValueError(f'ntxent_loss: triplets must be [3, M], got shape {np.shape(triplets)}')
  if np.shape(triplets)[1] <= 1:
    return jnp.zeros((), features.dtype)
  anchor, positive, negative = jnp.asarray(triplets)
  unit = l2_normalise(features)
  pos = jnp.sum(unit[anchor] * unit[positive], axis=-1) / temperature
  neg = jnp.sum(unit[anchor] * unit[negative], axis=-1) / temperature

  # Softmax of each positive pair against its anchor's negatives, shifted by the larger of the
  # pair and the anchor's largest negative. Shifts carry no gradient (they cancel).
  rows = features.shape[0]
  neg_max = jax.lax.stop_gradient(jax.ops.segment_max(neg, anchor, num_segments=rows))
  neg_sum = jax.ops.segment_sum(jnp.exp(neg - neg_max[anchor]), anchor, num_segments=rows)
  shift = jax.lax.stop_gradient(jnp.maximum(pos, neg_max[anchor]))
  numerator = jnp.exp(pos - shift)
  denominator = neg_sum[anchor] * jnp.exp(neg_max[anchor] - shift) + numerator
  tiny = jnp.finfo(features.dtype).tiny
  return -jnp.mean(jnp.log(numerator / denominator + tiny))


def random_triplets(labels, rng: np.random.Generator, per_anchor: int = 16) -> np.ndarray:
  """Random (anchor, positive, negative) triplets, `per_anchor` for every usable anchor.

  Classes are visited in increasing label order and their members in index order. A class with
  fewer than 2 members, or with no member of another class to contrast, is skipped. Each anchor
  gets `per_anchor` positives drawn uniformly with replacement among the other members of its
  class, and as many negatives drawn uniformly with replacement among all rows of other classes.
  The distribution equals the reference sampler's; the draws cannot equal torch's RNG stream.

  Args:
    labels: [N] int class per row.
    rng: numpy random generator.
    per_anchor: triplets per anchor.

  Returns:
    [3, M] int64 (anchor, positive, negative) indices; M = 0 when no class is usable.
  """
  labels = np.asarray(labels)
  if labels.ndim != 1:
    raise ValueError(f'random_triplets: labels must be [N], got shape {labels.shape}')
  if per_anchor < 1:
    raise ValueError(f'random_triplets: per_anchor must be positive, got {per_anchor}')
  parts = []
  for cls in np.unique(labels):
    members = np.flatnonzero(labels == cls)
    others = np.flatnonzero(labels != cls)
    if members.size < 2 or others.size == 0:
      continue
    slot = np.repeat(np.arange(members.size), per_anchor)
    # Uniform over the other members: draw among n-1 slots and skip over the anchor's own.
    draw = rng.integers(0, members.size - 1, slot.size)
    positive = members[draw + (draw >= slot)]
    negative = others[rng.integers(0, others.size, slot.size)]
    parts.append(np.stack([members[slot], positive, negative]))
  if not parts:
    return np.zeros((3, 0), np.int64)
  return np.concatenate(parts, axis=1).astype(np.int64)


def cross_entropy(logits, labels) -> jnp.ndarray:
  """Mean pixel-wise cross-entropy, as torch.nn.CrossEntropyLoss on NCHW logits.

  Args:
    logits: [..., H, W, C] float, channel j is class j + 1.
    labels: [..., H, W] int classes in 1..C (1 = background); out-of-range labels are not
      detected under jit.

  Returns:
    Scalar float mean of -log softmax(logits)[label - 1] over all pixels.
  """
  logits = jnp.asarray(logits)
  labels = jnp.asarray(labels)
  if logits.shape[:-1] != labels.shape:
    raise ValueError(
      f'cross_entropy: logits {logits.shape} and labels {labels.shape} disagree; '
      'expected logits [..., H, W, C] and labels [..., H, W]'
    )
  log_prob = jax.nn.log_softmax(logits, axis=-1)
  picked = jnp.take_along_axis(log_prob, (labels - 1)[..., None].astype(jnp.int32), axis=-1)
  return -jnp.mean(picked)


# Static-shape NT-Xent for the jitted training step --------------------------------------------------


def sample_triplets(
  rng: jax.Array, labels: jax.Array, per_anchor: int
) -> Tuple[jax.Array, jax.Array, jax.Array]:
  """Random triplets on device, distributed as `random_triplets`.

  Every row with a class (label > 0) whose class has >= 2 members and some member of another
  class gets `per_anchor` positives drawn uniformly with replacement among the other members of
  its class, and as many negatives drawn uniformly with replacement among rows of other classes.

  Args:
    rng: PRNG key.
    labels: [N] int32 classes, 0 = padding.
    per_anchor: static triplets per anchor P.

  Returns:
    (positives [N, P] int32, negatives [N, P] int32, anchor_ok [N] bool); rows of anchors that
    are not usable hold arbitrary indices.
  """
  valid = labels > 0
  same = (labels[:, None] == labels[None, :]) & valid[None, :]
  members = jnp.sum(same, axis=1)
  others = jnp.sum(valid) - members
  # Valid rows sorted by (class, index): class c occupies [start_c, start_c + members_c).
  order = jnp.argsort(jnp.where(valid, labels, jnp.iinfo(jnp.int32).max), stable=True)
  start = jnp.sum(valid[None, :] & (labels[None, :] < labels[:, None]), axis=1)
  rank = jnp.sum(
    same & (jnp.arange(labels.shape[0])[None, :] < jnp.arange(labels.shape[0])[:, None]), axis=1
  )
  pos_key, neg_key = jax.random.split(rng)
  shape = (labels.shape[0], per_anchor)
  draw = jax.random.randint(pos_key, shape, 0, jnp.maximum(members - 1, 1)[:, None])
  draw = draw + (draw >= rank[:, None])  # skip the anchor itself
  positives = order[jnp.clip(start[:, None] + draw, 0, labels.shape[0] - 1)]
  draw = jax.random.randint(neg_key, shape, 0, jnp.maximum(others, 1)[:, None])
  draw = jnp.where(draw < start[:, None], draw, draw + members[:, None])
  negatives = order[jnp.clip(draw, 0, labels.shape[0] - 1)]
  anchor_ok = valid & (members >= 2) & (others > 0)
  return positives.astype(jnp.int32), negatives.astype(jnp.int32), anchor_ok


def masked_ntxent(
  features: jax.Array,
  positives: jax.Array,
  positive_mask: jax.Array,
  negatives: jax.Array,
  negative_mask: jax.Array,
  temperature: float = 0.07,
) -> jax.Array:
  """NT-Xent with static shapes: per anchor row i, pairs (i, positives[i, p]) where
  positive_mask[i, p], each contrasted with the negatives (i, negatives[i, q]) where
  negative_mask[i, q] (repetitions count).

  Equals `ntxent_loss` on the triplets (i, positives[i, p], negatives[i, p]) when both
  masks are the anchor's usability (sampled mode); with index rows arange(N) and masks "same
  class, other row" / "other class" it is the all-pairs loss.

  Args:
    features: [N, S] float superfeatures.
    positives, negatives: [N, P], [N, Q] int32 row indices.
    positive_mask, negative_mask: [N, P], [N, Q] bool.
    temperature: softmax temperature.

  Returns:
    Scalar: mean over the positive pairs of -log(e^{s_ip/t} / (e^{s_ip/t} + sum_q e^{s_iq/t}) +
    tiny), s the cosine similarity; 0 with at most one positive pair.
  """
  unit = l2_normalise(features)
  sims = unit @ unit.T / temperature
  pos = jnp.take_along_axis(sims, positives, axis=1)
  neg = jnp.take_along_axis(sims, negatives, axis=1)
  # Shifts carry no gradient (they cancel); they keep exp() in range.
  neg_max = jax.lax.stop_gradient(
    jnp.max(jnp.where(negative_mask, neg, -jnp.inf), axis=1, keepdims=True)
  )
  shift = jax.lax.stop_gradient(jnp.maximum(pos, neg_max))
  neg_sum = jnp.sum(
    jnp.where(negative_mask, jnp.exp(neg - jnp.where(jnp.isfinite(neg_max), neg_max, 0.0)), 0.0),
    axis=1,
    keepdims=True,
  )
  neg_term = neg_sum * jnp.exp(jnp.where(jnp.isfinite(neg_max), neg_max, shift) - shift)
  numerator = jnp.exp(pos - shift)
  tiny = jnp.finfo(features.dtype).tiny
  per_pair = -jnp.log(numerator / (numerator + neg_term) + tiny)
  count = jnp.sum(positive_mask)
  total = jnp.sum(jnp.where(positive_mask, per_pair, 0.0))
  return jnp.where(count > 1, total / jnp.maximum(count, 1), 0.0)


def frame_ntxent(
  rng: jax.Array,
  superfeatures: jax.Array,
  labels: jax.Array,
  *,
  mode: str = 'sampled',
  per_anchor: int = TRIPLETS_PER_ANCHOR,
  temperature: float = TEMPERATURE,
) -> jax.Array:
  """NT-Xent of one frame with static shapes: superfeatures [N, S], labels [N] int32 pools
  (0 = padding); `mode` 'sampled' (per_anchor random triplets per anchor, `sample_triplets`)
  or 'all_pairs'."""
  if mode == 'all_pairs':
    valid = labels > 0
    same = labels[:, None] == labels[None, :]
    both = valid[:, None] & valid[None, :]
    rows = jnp.broadcast_to(jnp.arange(labels.shape[0]), same.shape)
    positive_mask = both & same & ~jnp.eye(labels.shape[0], dtype=bool)
    return masked_ntxent(superfeatures, rows, positive_mask, rows, both & ~same, temperature)
  positives, negatives, ok = sample_triplets(rng, labels, per_anchor)
  mask = jnp.broadcast_to(ok[:, None], positives.shape)
  return masked_ntxent(superfeatures, positives, mask, negatives, mask, temperature)
