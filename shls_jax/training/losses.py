"""Training losses: NT-Xent on superfeatures over sampled triplets, and pixel-wise cross-entropy.

`ntxent_loss` equals pytorch-metric-learning's `NTXentLoss(temperature)` with cosine similarity
and the default mean reduction, fed an (anchor, positive, negative) index tuple: every triplet
gives one positive pair (anchor, positive) and one negative pair (anchor, negative), pairs are
kept with repetition, and each positive pair is contrasted with all negative pairs that share its
anchor. `random_triplets` draws such tuples on the host.
"""

import jax
import jax.numpy as jnp
import numpy as np

# Norm floor of the cosine normalisation (torch.nn.functional.normalize's eps).
_NORM_EPS = 1e-12


def _normalize(x: jnp.ndarray) -> jnp.ndarray:
  """Rows of x [N, S] divided by max(L2 norm, eps); zero rows stay zero, with finite gradients."""
  sq = jnp.sum(x * x, axis=-1, keepdims=True)
  positive = sq > 0
  norm = jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)
  return x / jnp.maximum(norm, _NORM_EPS)


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
    raise ValueError(f"ntxent_loss: features must be [N, S], got shape {features.shape}")
  if np.shape(labels) != features.shape[:1]:
    raise ValueError(f"ntxent_loss: labels shape {np.shape(labels)} does not match "
                     f"{features.shape[0]} feature rows")
  if np.ndim(triplets) != 2 or np.shape(triplets)[0] != 3:
    raise ValueError(f"ntxent_loss: triplets must be [3, M], got shape {np.shape(triplets)}")
  if np.shape(triplets)[1] <= 1:
    return jnp.zeros((), features.dtype)
  anchor, positive, negative = jnp.asarray(triplets)
  unit = _normalize(features)
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
    raise ValueError(f"random_triplets: labels must be [N], got shape {labels.shape}")
  if per_anchor < 1:
    raise ValueError(f"random_triplets: per_anchor must be positive, got {per_anchor}")
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
    raise ValueError(f"cross_entropy: logits {logits.shape} and labels {labels.shape} disagree; "
                     "expected logits [..., H, W, C] and labels [..., H, W]")
  log_prob = jax.nn.log_softmax(logits, axis=-1)
  picked = jnp.take_along_axis(log_prob, (labels - 1)[..., None].astype(jnp.int32), axis=-1)
  return -jnp.mean(picked)
