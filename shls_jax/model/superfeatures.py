"""Superpixel pooling and the superfeature heads: info maps, per-superpixel means, the two
Linear + BatchNorm1d(1) + ReLU heads and their 1x1 combination into 32-d superfeatures.

Superpixel maps are int [B, H, W] with labels 1..N; label 0 marks pixels that belong to no
superpixel: they get a zero info map and take part in no mean. Everything runs over a static
capacity `num_segments` (>= N): per-superpixel arrays are [B, num_segments, ...] with row n - 1
holding label n. Check label ranges with `check_labels` on the host before jitting.
"""

from typing import Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from shls_jax.model.backbone import BN_EPS, BN_MOMENTUM, conv2d, layer_dtype, torch_uniform

SF_CHANNELS = 32


def check_labels(spx, num_segments: int) -> None:
  """Raises ValueError unless every label of `spx` (any int array) lies in 0..num_segments."""
  spx = np.asarray(spx)
  if not np.issubdtype(spx.dtype, np.integer):
    raise ValueError(f'superpixel labels must be integers, got dtype {spx.dtype}')
  if spx.size == 0:
    raise ValueError('superpixel map is empty')
  lo, hi = int(spx.min()), int(spx.max())
  if lo < 0:
    raise ValueError(f'superpixel labels must be >= 0 (0 = no superpixel), found {lo}')
  if hi > num_segments:
    raise ValueError(
      f'superpixel label {hi} exceeds the capacity num_segments={num_segments}; '
      'raise num_segments to at least the largest label'
    )


def _segment_sums(values: jax.Array, spx: jax.Array, num_segments: int) -> jax.Array:
  """Sums of `values` [B, H, W, C] per label: [B, num_segments, C] (label 0 dropped)."""
  b = spx.shape[0]
  # Label 0 goes to a spare slot per image that is sliced off afterwards.
  ids = jnp.where(spx > 0, spx - 1, num_segments).astype(jnp.int32)
  ids = ids + (num_segments + 1) * jnp.arange(b, dtype=jnp.int32)[:, None, None]
  sums = jax.ops.segment_sum(
    values.reshape(-1, values.shape[-1]), ids.reshape(-1), num_segments=b * (num_segments + 1)
  )
  return sums.reshape(b, num_segments + 1, -1)[:, :num_segments]


def segment_means(
  features: jax.Array, spx: jax.Array, num_segments: int
) -> Tuple[jax.Array, jax.Array]:
  """Per-superpixel means of `features` [B, H, W, C] over the labels of `spx` [B, H, W].

  Returns (means [B, num_segments, C] float32, or the features' dtype when wider; counts
  [B, num_segments] int32); the mean of a label without pixels is 0. The sums are taken in that
  dtype even for bfloat16 features.
  """
  features = features.astype(jnp.promote_types(features.dtype, jnp.float32))
  sums = _segment_sums(features, spx, num_segments)
  counts = _segment_sums(jnp.ones(spx.shape + (1,), jnp.int32), spx, num_segments)[..., 0]
  means = sums / jnp.maximum(counts, 1).astype(features.dtype)[..., None]
  return means, counts


def info_map(spx: jax.Array, num_segments: int) -> jax.Array:
  """Info map [B, H, W, 3] of `spx` [B, H, W], in JAX's default float dtype.

  On every pixel of superpixel n: (pixel count of n / (H * W), mean of row / (H - 1) over n,
  mean of col / (W - 1) over n); zeros on label-0 pixels.
  """
  b, h, w = spx.shape
  dtype = jnp.result_type(float)
  rows = jnp.arange(h, dtype=dtype) / max(h - 1, 1)
  cols = jnp.arange(w, dtype=dtype) / max(w - 1, 1)
  coords = jnp.stack(jnp.broadcast_arrays(rows[:, None], cols[None, :]), axis=-1)
  means, counts = segment_means(jnp.broadcast_to(coords, (b, h, w, 2)), spx, num_segments)
  per_label = jnp.concatenate([(counts / (h * w)).astype(dtype)[..., None], means], -1)
  # A zero row for label 0, then gather each pixel's row.
  per_label = jnp.concatenate([jnp.zeros((b, 1, 3), dtype), per_label], axis=1)
  return jnp.take_along_axis(per_label, spx.reshape(b, -1, 1).astype(jnp.int32), axis=1).reshape(
    b, h, w, 3
  )


def sequential_running_update(old: jax.Array, batch: jax.Array, valid: jax.Array) -> jax.Array:
  """Closed form of one `running_update` per valid entry of `batch`, in flat order.

  old: scalar; batch, valid: same shape. After K updates with values x_1..x_K the result is
  0.9^K old + sum_k 0.1 * 0.9^(K - k) x_k.
  """
  valid = valid.reshape(-1)
  rank = jnp.cumsum(valid.astype(jnp.int32))
  total = rank[-1]
  decay = 1.0 - BN_MOMENTUM
  weights = jnp.where(valid, BN_MOMENTUM * decay ** (total - rank).astype(jnp.float32), 0.0)
  return decay ** total.astype(jnp.float32) * old + jnp.sum(weights * batch.reshape(-1))


class SuperpixelBatchNorm(nn.Module):
  """PyTorch `BatchNorm1d(1)` applied to each superpixel's head output on its own.

  x: [B, S, F] (F head outputs of S superpixels), valid: [B, S] bool (superpixel has pixels).
  Eval: one scalar running mean/var for everything. Train: each superpixel is normalised across
  its F values (biased variance), and the running statistics take one momentum-0.1 step per
  valid superpixel in flat (image, label) order with the unbiased variance of its F values.
  Variables match `backbone.BatchNorm` with one channel. Computes and returns float32 (or the
  input's dtype when wider).
  """

  @nn.compact
  def __call__(self, x: jax.Array, valid: jax.Array, train: bool) -> jax.Array:
    x = x.astype(jnp.promote_types(x.dtype, jnp.float32))
    scale = self.param('scale', nn.initializers.ones, (1,))
    bias = self.param('bias', nn.initializers.zeros, (1,))
    ra_mean = self.variable('batch_stats', 'mean', jnp.zeros, (1,), jnp.float32)
    ra_var = self.variable('batch_stats', 'var', jnp.ones, (1,), jnp.float32)
    count = self.variable('batch_stats', 'num_batches_tracked', lambda: jnp.zeros((), jnp.int32))
    if train:
      n = x.shape[-1]
      mean = jnp.mean(x, axis=-1, keepdims=True)
      var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
      if not self.is_initializing():
        ra_mean.value = sequential_running_update(ra_mean.value, mean, valid)
        ra_var.value = sequential_running_update(ra_var.value, var * (n / (n - 1)), valid)
        count.value = count.value + jnp.sum(valid).astype(jnp.int32)
    else:
      mean, var = ra_mean.value, ra_var.value
    return (x - mean) * (jax.lax.rsqrt(var + BN_EPS) * scale) + bias


class SuperfeatureHead(nn.Module):
  """Linear (child '0') -> SuperpixelBatchNorm (child '1') -> ReLU on per-superpixel means.

  means: [B, S, C], valid: [B, S] bool. Returns [B, S, features], 0 where not valid.
  """

  features: int = SF_CHANNELS

  @nn.compact
  def __call__(self, means: jax.Array, valid: jax.Array, train: bool) -> jax.Array:
    fan_in = means.shape[-1]
    x = nn.Dense(
      self.features,
      kernel_init=torch_uniform(fan_in),
      bias_init=torch_uniform(fan_in),
      dtype=layer_dtype(),
      name='0',
    )(means)
    x = nn.relu(SuperpixelBatchNorm(name='1')(x, valid, train))
    return jnp.where(valid[..., None], x, 0.0)


class HeadCombination(nn.Module):
  """Conv2d(2, 1, 1x1) (child '0') + ReLU over the two head outputs stacked as channels.

  sf_l1, sf_l4: [B, S, F]. Returns [B, S, F] in their dtype.
  """

  @nn.compact
  def __call__(self, sf_l1: jax.Array, sf_l4: jax.Array) -> jax.Array:
    x = jnp.stack([sf_l1, sf_l4], axis=-1)
    # The heads' dtype (float32) whatever the layers compute in: superfeatures feed the losses
    # and the memory.
    return nn.relu(conv2d(1, 1, 2, name='0')(x))[..., 0].astype(x.dtype)


def label_range_mask(spx: jax.Array, num_segments: int) -> jax.Array:
  """[B, num_segments] bool: label n <= the largest label of each image of `spx` [B, H, W]."""
  top = jnp.max(spx.reshape(spx.shape[0], -1), axis=1)
  return jnp.arange(1, num_segments + 1)[None, :] <= top[:, None]


def l2_normalise(x: jax.Array, eps: float = 1e-12) -> jax.Array:
  """Rows of x [..., D] divided by max(L2 norm, eps) (torch.nn.functional.normalize); zero rows
  stay zero, with finite gradients."""
  sq = jnp.sum(x * x, axis=-1, keepdims=True)
  positive = sq > 0
  norm = jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)
  return x / jnp.maximum(norm, eps)
