"""Fast-mode decoding: every object of a frame decoded at once on one static canvas.

Static shapes. Each object's inputs are exact mode's, at the current ROI size padded to
a multiple of 4, placed at the top-left of a zero canvas whose sides are buckets
(`config.canvas_sizes`, `static_crops.canvas_inputs`); the ROI geometry is traced, all
objects of a frame share the largest canvas among them and are decoded at once with
`jax.vmap` over a power-of-two object capacity, and each output is read back at its ROI
(`static_crops.paste_canvas`). The decoder compiles once per (canvas, object capacity)
pair, so after the first frames of the first videos nothing recompiles. The results deviate
from exact mode only where the decoder's receptive field reaches the canvas beyond exact
mode's own padding, i.e. near the bottom/right ROI edges when the bucket is larger than the
padded ROI: mean per-frame mask IoU against exact mode 0.990 on the first 4 frames of DAVIS
blackswan at 240x427 (500 SLIC superpixels, v1 checkpoint; 160x192 and 160x256 canvases for
156x192 and 156x236 padded ROIs), 1.0 with canvases equal to the padded ROIs. The decoder's
time grows with the canvas area (at 480p, 320x512 for a 312x464 padded ROI) and dominates a
480p frame; ROIs longer than `config.max_canvas` are decoded downscaled (see
`defaults.get_config` for the measured quality/speed trade-off).
"""

import collections
import time
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from shls_jax.crops import object_crops, static_crops
from shls_jax.inference.exact_decoder import decode_object_logits
from shls_jax.inference.state import Carry, Embedding, FirstFrame
from shls_jax.memory import rois
from shls_jax.memory.frame_rules import MemoryPrediction
from shls_jax.model import decoder


def object_capacity(num_objects: int) -> int:
  """Power of two >= num_objects: few distinct compiled object counts across videos."""
  return 1 << max(num_objects - 1, 0).bit_length()


def full_frame_attention(spx: np.ndarray, prediction: MemoryPrediction) -> np.ndarray:
  """[K, H, W, 4] float32 attention maps of every object over the whole frame."""
  height, width = spx.shape
  full = np.tile(np.array([[0, height, 0, width]], np.int32), (len(prediction.boxes), 1))
  return np.stack(rois.attention_maps(spx, prediction.knn_scores, prediction.cent_scores, full))


def _decode_probs_traced(canvas, variables, first, prev, cur, extents, valid):
  """Decoding of a padded object batch on one static canvas (ch, cw).

  first, prev, cur: `CropSource`s whose boxes, planes and attention maps have a leading object
  axis [capacity] (the features are shared); extents: [capacity, 2] decode sizes; valid:
  [capacity] bool. Returns object probabilities [capacity, H, W], 0 for padding objects.
  """
  frame_hw = cur.l1.shape[:2]

  def one(first, prev, cur, extent):
    inputs = static_crops.canvas_inputs(first, prev, cur, canvas=canvas, extent=extent)
    return static_crops.paste_canvas(
      decode_object_logits(variables, inputs), cur.box, frame_hw, extent
    )

  per_object = object_crops.CropSource(l1=None, l4=None, box=0, plane=0, attention=0)
  frame_logits = jax.vmap(one, in_axes=(per_object, per_object, per_object, 0))(
    first, prev, cur, extents
  )
  return jax.nn.softmax(frame_logits, axis=-1)[..., 1] * valid[:, None, None]


_decode_probs = jax.jit(_decode_probs_traced, static_argnums=0)


def decode_batch(canvas, variables, first, prev, cur, extents, valid):
  """`_decode_probs_traced` aggregated: log-odds [H, W, capacity + 1] (traceable)."""
  return decoder.soft_aggregate(
    _decode_probs_traced(canvas, variables, first, prev, cur, extents, valid)
  )


_decode_all = jax.jit(decode_batch, static_argnums=0)


_soft_aggregate = jax.jit(decoder.soft_aggregate)


def object_batch(first: FirstFrame, carry: Carry, emb: Embedding, pred, attention, extents):
  """`_decode_probs_traced` inputs (first, prev, cur, extents, valid) of `first`'s objects,
  padded to their power-of-two object capacity (host or traced arrays)."""
  objects = first.objects
  num_objects = len(first.boxes)
  capacity = object_capacity(num_objects)
  pad = lambda x, value: jnp.concatenate(
    [jnp.asarray(x), jnp.full((capacity - num_objects,) + x.shape[1:], value, x.dtype)]
  )
  # Padding objects get a 1-pixel box, which fits any canvas; their output is masked out.
  boxes = lambda b: pad(jnp.asarray(b, jnp.int32), np.array([0, 1, 0, 1], np.int32))
  planes = lambda x: pad(jnp.moveaxis(jnp.asarray(x), -1, 0), 0.0)
  channels = slice(objects.start + 1, objects.stop + 1)
  return (
    object_crops.CropSource(first.l1, first.l4, boxes(first.boxes), plane=planes(first.planes)),
    object_crops.CropSource(
      carry.l1,
      carry.l4,
      boxes(carry.boxes[objects]),
      plane=planes(carry.logodds[..., channels]),
      attention=pad(carry.attention[objects], 0.0),
    ),
    object_crops.CropSource(
      emb.l1, emb.l4, boxes(pred.boxes[objects]), attention=pad(attention[objects], 0.0)
    ),
    pad(extents[objects], np.array([1, 1], np.int32)),
    jnp.arange(capacity) < num_objects,
  )


class FastDecoder:
  """Decodes every object of a frame on one canvas, in one compiled call per first frame.

  Attributes:
    canvases: frames decoded per canvas (ch, cw) since construction; the decoder compiles at
      most once per canvas and object capacity.
  """

  def __init__(self, variables, config, timings: collections.defaultdict):
    """variables: SHLS {'params', 'batch_stats'}; config: `config.inference` (`canvas_sizes`,
    `max_canvas`); timings: the engine's seconds per stage, to which 'decode' is added."""
    if any(s < object_crops.MULTIPLE or s % object_crops.MULTIPLE for s in config.canvas_sizes):
      raise ValueError(
        f'canvas_sizes {tuple(config.canvas_sizes)} must be positive multiples '
        f'of {object_crops.MULTIPLE}'
      )
    if config.max_canvas < 0 or config.max_canvas % object_crops.MULTIPLE:
      raise ValueError(
        f'max_canvas {config.max_canvas} must be 0 or a positive multiple of '
        f'{object_crops.MULTIPLE}'
      )
    self.variables = variables
    self.canvas_sizes = tuple(config.canvas_sizes)
    self.max_canvas = config.max_canvas
    self.timings = timings
    self.canvases = collections.Counter()

  def attention(self, spx: np.ndarray, pred: MemoryPrediction) -> jax.Array:
    """[K, H, W, 4] full-frame attention maps, which the next frame's canvases crop."""
    return jnp.asarray(full_frame_attention(spx, pred))

  def decode(
    self,
    firsts: Sequence[FirstFrame],
    carry: Carry,
    emb: Embedding,
    spx: np.ndarray,
    pred: MemoryPrediction,
  ) -> tuple[np.ndarray, jax.Array]:
    """Aggregated log-odds [H, W, C] float32 of the frame, and its full-frame attention maps
    [K, H, W, 4] for the next frame. `firsts` hold every object's first-frame state, in object
    order."""
    start = time.perf_counter()
    attention = self.attention(spx, pred)
    num_objects = len(pred.boxes)
    extents = static_crops.decode_extents(pred.boxes, self.max_canvas)
    canvas = static_crops.canvas_size(extents, spx.shape, self.canvas_sizes)
    self.canvases[canvas] += 1
    # One batch per first frame (the features differ between them), on the frame's canvas.
    batches = [object_batch(first, carry, emb, pred, attention, extents) for first in firsts]
    if len(batches) == 1:
      logodds = _decode_all(canvas, self.variables, *batches[0])
    else:
      probs = [
        _decode_probs(canvas, self.variables, *batch)[: len(first.boxes)]
        for first, batch in zip(firsts, batches)
      ]
      logodds = _soft_aggregate(jnp.concatenate(probs))
    logodds = np.asarray(logodds[..., : num_objects + 1])
    self.timings['decode'] += time.perf_counter() - start
    return logodds, attention
