"""The per-object segmentation decoder: feature modulator ("mem_select"), refinement decoder
("segmenter"), and the pure functions that paste per-object logits into the frame and
soft-aggregate them.

Layout is NHWC. Decoder crops have heights and widths that are multiples of 4 (see
`shls_jax.crops.resample.pad_to_multiple`); L4 crops are a quarter of that size. Submodule names follow the PyTorch
module tree.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from shls_jax.model.backbone import ConvBN, ResLayer, conv2d
from shls_jax.ops.resize import resize_bilinear


class ResBlock(nn.Module):
  """x + conv2(conv1(relu(x))), each conv a 3x3 conv (bias) + BN + ReLU; channels kept."""

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    c = x.shape[-1]
    r = ConvBN(c, 3, padding=1, use_bias=True, name='conv1')(nn.relu(x), train)
    r = ConvBN(c, 3, padding=1, use_bias=True, name='conv2')(r, train)
    return x + r


class Refine(nn.Module):
  """ResMM(ResFS(convFS(f)) + 2x bilinear upsample of the coarser map pm).

  f: [B, 2h, 2w, Cin], pm: [B, h, w, features] -> [B, 2h, 2w, features].
  """

  features: int = 256

  @nn.compact
  def __call__(self, f: jax.Array, pm: jax.Array, train: bool) -> jax.Array:
    s = conv2d(self.features, 3, f.shape[-1], padding=1, name='convFS')(f)
    s = ResBlock(name='ResFS')(s, train)
    up = resize_bilinear(pm, (2 * pm.shape[1], 2 * pm.shape[2]))
    return ResBlock(name='ResMM')(s + up, train)


class MemSelect(nn.Module):
  """Feature modulator: gates the previous/current L4 crops with a softmax over channels
  computed from their L1 crops and attention maps, and stacks the two as channels.

  am: [2, h, w, 4], l1: [2, h, w, 67], l4: [2, h/4, w/4, 259] (index 0 = previous frame,
  1 = current). Returns [1, h/4, w/4, 518] (previous channels first).
  """

  @nn.compact
  def __call__(self, am: jax.Array, l1: jax.Array, l4: jax.Array) -> jax.Array:
    x = conv2d(32, 3, am.shape[-1], stride=2, padding=1, name='convAM')(am)
    x = conv2d(32, 3, l1.shape[-1], stride=2, padding=1, name='convL2')(l1) + x
    gate = conv2d(l4.shape[-1], 3, 32, stride=2, padding=1, name='gate')(x)
    out = jax.nn.softmax(gate, axis=-1) * l4
    n, h, w, c = out.shape
    return out.transpose(1, 2, 0, 3).reshape(1, h, w, n * c)


class Segmenter(nn.Module):
  """Refinement decoder.

  l1: [B, h, w, 69] (first mask, previous logits, first-frame L1 features),
  l4: [B, h/4, w/4, 777] (first-frame L4 crop, modulated 518 channels), am: [B, h, w, 4]
  current attention map. Returns logits [B, h, w, 2] (background, object).
  """

  @nn.compact
  def __call__(self, l1: jax.Array, l4: jax.Array, am: jax.Array, train: bool) -> jax.Array:
    l2 = ResLayer(128, 2, name='layer2')(l1, train)
    x = conv2d(256, 3, l4.shape[-1], padding=1, name='convFM')(l4)
    x = ResBlock(name='res_L4')(x, train)
    x = Refine(name='RF2')(l2, x, train)
    x = Refine(name='RF1')(jnp.concatenate([l1, am], axis=-1), x, train)
    return conv2d(2, 3, 256, padding=1, name='pred')(x)


# Probabilities are clamped to [PROBABILITY_CLAMP, 1 - PROBABILITY_CLAMP] before log-odds.
PROBABILITY_CLAMP = 1e-7


def soft_aggregate(probs: jax.Array) -> jax.Array:
  """Soft aggregation of object probabilities probs [K, H, W] into log-odds [H, W, K + 1].

  Channel 0 (class 1, background) = prod(1 - p_k), channel k = p_k; clamped to
  [PROBABILITY_CLAMP, 1 - PROBABILITY_CLAMP], then log(p / (1 - p)).
  """
  em = jnp.concatenate([jnp.prod(1.0 - probs, axis=0, keepdims=True), probs], axis=0)
  em = jnp.clip(em, PROBABILITY_CLAMP, 1.0 - PROBABILITY_CLAMP)
  return jnp.moveaxis(jnp.log(em / (1.0 - em)), 0, -1)


def aggregate_objects(frame_logits: jax.Array) -> jax.Array:
  """Pasted per-object logits [K, H, W, 2] -> aggregated log-odds [H, W, K + 1] (channel j =
  class j + 1): softmax per object, object channel, `soft_aggregate`."""
  return soft_aggregate(jax.nn.softmax(frame_logits, axis=-1)[..., 1])
