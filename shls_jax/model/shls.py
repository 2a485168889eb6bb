"""The SHLS network: superpixel embedding (backbone + superfeature heads) and the per-object
decoder (feature modulator + refinement decoder), as one Flax module.

Variables are {'params', 'batch_stats'}; a variable path joined by '.' is the PyTorch
state_dict name of the same tensor (children `spx_embedding.feat_extractor`, `mem_select`,
`segmenter`, `sf_head_L1`, `sf_head_L4`, `sf_conv_1x1`), see `shls_jax.checkpoints.torch_interop`.
Every caller goes through the functions `embed` and `decode_object` at the bottom, which apply
the module with explicit variables and return the batch statistics after the call.
"""

import functools
from typing import Dict, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from shls_jax.model.backbone import ResNet18
from shls_jax.model.decoder import MemSelect, Segmenter
from shls_jax.model.superfeatures import (
  HeadCombination,
  SuperfeatureHead,
  info_map,
  label_range_mask,
  segment_means,
)
from shls_jax.ops.resize import resize_bilinear, resize_nearest


class SpxEmbedding(nn.Module):
  """Holds the backbone under the name `feat_extractor`."""

  @nn.compact
  def __call__(self, image: jax.Array, train: bool) -> Tuple[jax.Array, jax.Array]:
    return ResNet18(name='feat_extractor')(image, train)


class SHLS(nn.Module):
  """SHLS network. See `embed`, `modulate`, `refine` and `decode_object`."""

  def setup(self):
    self.spx_embedding = SpxEmbedding()
    self.mem_select = MemSelect()
    self.segmenter = Segmenter()
    self.sf_head_L1 = SuperfeatureHead()
    self.sf_head_L4 = SuperfeatureHead()
    self.sf_conv_1x1 = HeadCombination()

  def embed(
    self, image: jax.Array, spx: jax.Array, *, num_segments: int, train: bool = False
  ) -> Dict[str, jax.Array]:
    """Features and superfeatures of a batch of frames.

    Args:
      image: [B, H, W, 3] float32, normalised.
      spx: [B, H, W] int, superpixel labels 1..N (0 = no superpixel), N <= num_segments
        (check with `superfeatures.check_labels` before jitting).
      num_segments: static superpixel capacity.
      train: batch statistics in the BatchNorms (needs mutable=['batch_stats']).

    Returns:
      feat_l1 [B, H, W, 67]: bilinear-upsampled L2 features + info map;
      feat_l4 [B, h, w, 259]: L4 features + info map of spx_l4;
      spx_l4 [B, h, w] int32: spx resized to (h, w) with PyTorch 'nearest';
      superfeatures [B, num_segments, 32] float32 (row n - 1 = label n; zero rows past N);
      valid [B, num_segments] bool: label n <= N (the largest label of each image).
    """
    l4, l2 = self.spx_embedding(image, train)
    spx = spx.astype(jnp.int32)
    size = image.shape[1:3]
    feat_l1 = jnp.concatenate([resize_bilinear(l2, size), info_map(spx, num_segments)], -1)
    spx_l4 = resize_nearest(spx[..., None], l4.shape[1:3])[..., 0]
    feat_l4 = jnp.concatenate([l4, info_map(spx_l4, num_segments)], -1)
    means_l1, counts_l1 = segment_means(feat_l1, spx, num_segments)
    means_l4, counts_l4 = segment_means(feat_l4, spx_l4, num_segments)
    sf_l1 = self.sf_head_L1(means_l1, counts_l1 > 0, train)
    sf_l4 = self.sf_head_L4(means_l4, counts_l4 > 0, train)
    valid = label_range_mask(spx, num_segments)
    superfeatures = jnp.where(valid[..., None], self.sf_conv_1x1(sf_l1, sf_l4), 0.0)
    return dict(
      feat_l1=feat_l1, feat_l4=feat_l4, spx_l4=spx_l4, superfeatures=superfeatures, valid=valid
    )

  def modulate(self, am: jax.Array, l1: jax.Array, l4: jax.Array) -> jax.Array:
    """Feature modulator: am [2, h, w, 4], l1 [2, h, w, 67], l4 [2, h/4, w/4, 259]
    (previous, current) -> [1, h/4, w/4, 518]."""
    return self.mem_select(am, l1, l4)

  def refine(self, l1: jax.Array, l4: jax.Array, am: jax.Array, train: bool = False) -> jax.Array:
    """Refinement decoder: l1 [B, h, w, 69], l4 [B, h/4, w/4, 777], am [B, h, w, 4] ->
    logits [B, h, w, 2]."""
    return self.segmenter(l1, l4, am, train)

  def decode_object(
    self,
    am_pair: jax.Array,
    l1_pair: jax.Array,
    l4_pair: jax.Array,
    first_l4: jax.Array,
    l1: jax.Array,
    am: jax.Array,
    train: bool = False,
  ) -> jax.Array:
    """Modulator then decoder for one object; h, w multiples of 4.

    Args:
      am_pair: [2, h, w, 4] previous/current attention maps.
      l1_pair: [2, h, w, 67] previous/current L1 crops.
      l4_pair: [2, h/4, w/4, 259] previous/current L4 crops.
      first_l4: [1, h/4, w/4, 259] first-frame L4 crop.
      l1: [1, h, w, 69] first mask, previous logits, first-frame L1 crop.
      am: [1, h, w, 4] current attention map.

    Returns:
      logits [1, h, w, 2] (background, object).
    """
    l4 = jnp.concatenate([first_l4, self.modulate(am_pair, l1_pair, l4_pair)], axis=-1)
    return self.refine(l1, l4, am, train)

  def initialize(self, image: jax.Array, spx: jax.Array, crop: jax.Array):
    """Touches every submodule (for `init`): embedding of image/spx and one decoder pass on
    crop [1, h, w, 1] (h, w multiples of 4)."""
    out = self.embed(image, spx, num_segments=int(spx.shape[1] * spx.shape[2]))
    _, h, w, _ = crop.shape
    zeros = lambda *shape: jnp.zeros(shape, jnp.float32)
    logits = self.decode_object(
      zeros(2, h, w, 4),
      zeros(2, h, w, 67),
      zeros(2, h // 4, w // 4, 259),
      zeros(1, h // 4, w // 4, 259),
      zeros(1, h, w, 69),
      zeros(1, h, w, 4),
    )
    return out, logits


@functools.partial(jax.jit, static_argnames=('image_size', 'crop_size'))
def init_variables(
  rng: jax.Array, image_size: Tuple[int, int] = (32, 32), crop_size: Tuple[int, int] = (16, 16)
):
  """Fresh variables {'params', 'batch_stats'} of `SHLS` (PyTorch default initialisation).

  Shapes of the variables do not depend on the sizes; they only set the dummy inputs. Jitted:
  run eagerly, the dummy forward pass takes twice as long as its compilation.
  """
  h, w = image_size
  spx = (jnp.arange(h * w, dtype=jnp.int32).reshape(1, h, w) % 4) + 1
  return SHLS().init(
    rng,
    jnp.zeros((1, h, w, 3), jnp.float32),
    spx,
    jnp.zeros((1,) + tuple(crop_size) + (1,), jnp.float32),
    method=SHLS.initialize,
  )


def embed(
  variables, image: jax.Array, spx: jax.Array, *, num_segments: int, train: bool = False
) -> Tuple[Dict[str, jax.Array], Dict]:
  """`SHLS.embed` of a batch of frames (arguments as there) with explicit variables.

  Returns:
    (the `SHLS.embed` dict, batch_stats after the call: updated in train mode, else as given).
  """
  out, updated = SHLS().apply(
    variables,
    image,
    spx,
    num_segments=num_segments,
    train=train,
    mutable=['batch_stats'],
    method=SHLS.embed,
  )
  return out, updated['batch_stats']


def decode_object(variables, inputs, *, train: bool = False) -> Tuple[jax.Array, Dict]:
  """Modulator and decoder on one object's crops.

  Args:
    variables: {'params', 'batch_stats'}.
    inputs: `crops.object_crops.ObjectInputs` of one object (no leading object axis).
    train: batch statistics in the decoder's BatchNorms.

  Returns:
    (logits [h, w, 2] (background, object), batch_stats after the call).
  """
  logits, updated = SHLS().apply(
    variables,
    inputs.attention,
    inputs.l1,
    inputs.l4,
    inputs.first_l4[None],
    inputs.decoder_l1[None],
    inputs.decoder_attention[None],
    train=train,
    mutable=['batch_stats'],
    method=SHLS.decode_object,
  )
  return logits[0], updated['batch_stats']
