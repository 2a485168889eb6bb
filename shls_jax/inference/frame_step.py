"""Fast mode's frame t >= 1 as one step on the device: frame (uint8) in, mask (uint8 object ids)
out, everything between on the device.

The step runs normalisation, the JAX SLIC (or takes the host's superpixels), the embedding, the
memory's kNN and centroid scores (`jax_memory.scores`), the frame rules traced
(`memory.device_rules`: pre-segmentation cleaning, ROIs, full-frame attention maps, pools; the
confident superpixels of `training_memory`), the decoder of every object on one canvas
(`fast_decoder.decode_batch`), the soft aggregation and the memory update
(`jax_memory.add_entries`). What frame t + 1 needs stays on the device in `FrameCarry`: a steady
frame costs one host-to-device copy (the frame; with host superpixels, the map too) and one
device-to-host copy (the mask).

It is two compiled programs queued back to back (`observe`, then `decide`), with nothing on the
host between them: the decoder's canvas is static, so `decide` compiles once per canvas bucket,
as the host path's decoder does, while `observe` (superpixels, embedding, rules) compiles once
per frame size. After the buckets a video uses have been seen, nothing compiles.

Against fast mode on the host rules (`engine` with the device memory), two things differ, both
measured in the README ("The frame on the accelerator"): the hull of the cleaning step
(`device_rules`), and the canvas, which the host picks from the newest mask it holds rather than
from the frame's own ROIs (`canvas`): it is often one bucket larger (the decoder sees more zero
canvas), and an ROI that outgrew it is decoded scaled down (`fit_extents`).

Frame 0 (memory fit, merge of the superpixels with the annotation) runs once per video on the
host path (`Propagator.first_frame`); `initial_state` moves its result to the device.
"""

from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from shls_jax.crops import static_crops
from shls_jax.inference import fast_decoder
from shls_jax.inference.state import TRACE_COUNTS, Carry, Embedding, FirstFrame
from shls_jax.memory import device_rules, jax_memory, rois, rules, training_memory
from shls_jax.model import shls
from shls_jax.superpixels import pools_jax, slic_jax

# Widening per side of the boxes that choose a frame's canvas: the ROIs' own plus two frames of
# motion.
CANVAS_WIDENING = rules.INFERENCE_WIDENING + 0.1


class Settings(NamedTuple):
  """Static settings of a compiled step (hashable).

  Attributes:
    num_cls: classes C (background included) of the video.
    canvas: decoder canvas (ch, cw) of this frame (`canvas`).
    max_canvas: longest decoded side (`config.max_canvas`; 0 = no limit).
    canvas_sizes: the canvas side buckets (`config.canvas_sizes`).
    superpixel_capacity: superpixel slots N of the embedding and the memory's queries.
    slic_segments: JAX SLIC's n_segments; 0 = superpixels come from the host.
    kmeans_iterations: Lloyd iterations of each memory refit.
    mean, std: RGB normalisation of the frames.
  """

  num_cls: int
  canvas: tuple[int, int]
  max_canvas: int
  canvas_sizes: tuple[int, ...]
  superpixel_capacity: int
  slic_segments: int
  kmeans_iterations: int
  mean: tuple[float, ...]
  std: tuple[float, ...]


class FirstState(NamedTuple):
  """The video's frame-0 state on the device: l1 [H, W, 67], l4 [h4, w4, 259], planes
  [H, W, K] given masks, boxes [K, 4] int32 annotation ROIs, ids [C] uint8 object id of each
  class (0 for the background)."""

  l1: jax.Array
  l4: jax.Array
  planes: jax.Array
  boxes: jax.Array
  ids: jax.Array


class FrameCarry(NamedTuple):
  """What frame t hands to frame t + 1 on the device (`state.Carry`'s fast-mode fields):
  memory, l1, l4, logodds [H, W, C], mask [H, W] int32 classes, boxes [K, 4], attention
  [K, H, W, 4]."""

  memory: jax_memory.DeviceState
  l1: jax.Array
  l4: jax.Array
  logodds: jax.Array
  mask: jax.Array
  boxes: jax.Array
  attention: jax.Array


class Details(NamedTuple):
  """What the step keeps on the device unless asked for: preseg [H, W] int32 cleaned
  pre-segmentation, logodds [H, W, C] float32."""

  preseg: jax.Array
  logodds: jax.Array


def canvas(
  mask: np.ndarray, ids: np.ndarray, min_boxes: np.ndarray, max_canvas: int, sizes
) -> tuple[int, int]:
  """Canvas for a frame, chosen on the host from an earlier frame's mask.

  The step computes its ROIs on the device; the host sees only masks, and the newest it holds
  is two frames old (one frame is in flight). Each object's box in `mask`, widened by
  `CANVAS_WIDENING` per side (the inference ROIs' 0.15 plus room for two frames of motion) and
  grown to its minimum size, gives the decode sizes whose smallest bucket is the canvas, as the
  host rules pick it from the true ROIs. A true ROI that does not fit after all is decoded
  scaled down into the canvas (`fit_extents`).

  Args:
    mask: [H, W] uint8 object ids of an earlier frame.
    ids: [C] object id of each class (ids[0] = 0, the background).
    min_boxes: [C - 1, 4] the objects' minimum ROI sizes (the memory's initial boxes).
    max_canvas: `config.max_canvas`.
    sizes: `config.canvas_sizes`.
  """
  boxes = []
  for object_id, min_box in zip(ids[1:], min_boxes):
    present = mask == object_id
    box = rois.roi(present, widening=CANVAS_WIDENING)
    boxes.append(rois.grow_to_min_size(box, min_box, mask.shape) if present.any() else box)
  extents = static_crops.decode_extents(np.stack(boxes), max_canvas)
  return static_crops.canvas_size(extents, mask.shape, sizes)


def fit_extents(extents: jax.Array, canvas: tuple[int, int]) -> jax.Array:
  """Decode sizes [K, 2] scaled down, aspect kept, where they exceed the canvas (traced)."""
  limit = jnp.asarray(canvas, jnp.float32)
  scale = jnp.min(limit / jnp.maximum(extents, 1).astype(jnp.float32), axis=1, keepdims=True)
  fitted = jnp.clip(jnp.floor(extents * scale), 1, limit).astype(jnp.int32)
  return jnp.where(scale < 1, fitted, extents)


def initial_state(
  first: FirstFrame, carry: Carry, ids: np.ndarray
) -> tuple[FirstState, FrameCarry]:
  """Frame 0's host-path state (`Propagator.first_frame` with a `JaxMemory`) on the device."""
  return (
    FirstState(
      first.l1,
      first.l4,
      jnp.asarray(first.planes),
      jnp.asarray(first.boxes, jnp.int32),
      jnp.asarray(ids, jnp.uint8),
    ),
    FrameCarry(
      jax_memory.device_state(carry.memory),
      carry.l1,
      carry.l4,
      jnp.asarray(carry.logodds, jnp.float32),
      jnp.asarray(carry.mask, jnp.int32),
      jnp.asarray(carry.boxes, jnp.int32),
      jnp.asarray(carry.attention),
    ),
  )


class _Boxes(NamedTuple):
  """The part of a memory prediction that `fast_decoder.object_batch` reads."""

  boxes: jax.Array


def decode_extents(boxes: jax.Array, max_canvas: int) -> jax.Array:
  """Traced `static_crops.decode_extents`: [K, 2] int32 decode sizes of boxes [K, 4]."""
  extents = jnp.stack([boxes[:, 1] - boxes[:, 0], boxes[:, 3] - boxes[:, 2]], axis=1)
  if max_canvas <= 0:
    return extents.astype(jnp.int32)
  longest = jnp.max(extents, axis=1, keepdims=True)
  scaled = jnp.clip(jnp.rint(extents * (max_canvas / longest)), 1, max_canvas)
  return jnp.where(longest > max_canvas, scaled, extents).astype(jnp.int32)


class Observation(NamedTuple):
  """What frame t shows before decoding (device arrays): spx [H, W] int32 superpixels, l1, l4
  and features [N, 32] of the embedding, preseg [H, W] int32 cleaned pre-segmentation, boxes
  [K, 4] ROIs, attention [K, H, W, 4] full-frame attention maps."""

  spx: jax.Array
  l1: jax.Array
  l4: jax.Array
  features: jax.Array
  preseg: jax.Array
  boxes: jax.Array
  attention: jax.Array


def observe(
  variables, carry: FrameCarry, frame: jax.Array, spx: Optional[jax.Array], settings: Settings
) -> Observation:
  """Frame t up to the decoder: superpixels, embedding, memory scores and the frame rules
  (traceable; `settings.canvas` is not read)."""
  TRACE_COUNTS['frame_step'] += 1
  capacity = settings.superpixel_capacity
  if spx is None:
    spx, _ = slic_jax.segment(frame, n_segments=settings.slic_segments, capacity=capacity)
  mean, std = jnp.asarray(settings.mean), jnp.asarray(settings.std)
  image = (frame.astype(jnp.float32) / 255.0 - mean) / std
  out = shls.embed(variables, image[None], spx[None], num_segments=capacity)[0]
  features = out['superfeatures'][0]
  num_cls = settings.num_cls
  knn_pred, knn_scores, cent_scores = jax_memory.scores(carry.memory, features)
  preseg = device_rules.clean_preseg(knn_pred[spx - 1], carry.mask, num_cls)
  return Observation(
    spx,
    out['feat_l1'][0],
    out['feat_l4'][0],
    features,
    preseg,
    device_rules.boxes(preseg, carry.memory.initial_boxes, num_cls),
    device_rules.attention(spx, knn_scores, cent_scores),
  )


def decide(
  variables, first: FirstState, carry: FrameCarry, seen: Observation, settings: Settings
) -> tuple[FrameCarry, jax.Array, Details]:
  """Frame t from its `Observation`: every object decoded on `settings.canvas`, the soft
  aggregation, the mask and the memory update (traceable)."""
  TRACE_COUNTS['frame_step'] += 1
  num_cls = settings.num_cls
  batch = fast_decoder.object_batch(
    FirstFrame(first.l1, first.l4, first.planes, first.boxes),
    carry,
    Embedding(seen.l1, seen.l4, seen.features),
    _Boxes(seen.boxes),
    seen.attention,
    fit_extents(decode_extents(seen.boxes, settings.max_canvas), settings.canvas),
  )
  logodds = fast_decoder.decode_batch(settings.canvas, variables, *batch)[..., :num_cls]
  mask = (jnp.argmax(logodds, axis=-1) + 1).astype(jnp.int32)
  capacity = settings.superpixel_capacity
  confident = training_memory.confident_superpixels(seen.spx, mask, logodds, num_segments=capacity)
  pools = pools_jax.mode_pools(seen.spx, seen.preseg, capacity, num_cls)
  memory = jax_memory.add_entries(
    carry.memory, seen.features, jnp.where(confident, pools, 0), settings.kmeans_iterations
  )
  next_carry = FrameCarry(memory, seen.l1, seen.l4, logodds, mask, seen.boxes, seen.attention)
  return next_carry, first.ids[mask - 1], Details(seen.preseg, logodds)


observe_jit = jax.jit(observe, static_argnames='settings')
decide_jit = jax.jit(decide, static_argnames='settings')


def step(variables, first, carry, frame, spx, settings):
  """One frame t >= 1: `observe` then `decide`, two compiled programs queued back to back with
  nothing between them on the host. `observe` compiles once per frame size and settings,
  `decide` once per canvas too, so that a new canvas recompiles the decoder and not the
  superpixels and the embedding.

  Args:
    variables: SHLS {'params', 'batch_stats'} (device arrays).
    first, carry: the video's frame-0 state and frame t - 1's carry.
    frame: [H, W, 3] uint8 RGB (a device array).
    spx: [H, W] int32 superpixels 1..n <= settings.superpixel_capacity (a device array), or None
      for the JAX SLIC of the frame.
    settings: static settings, with this frame's canvas.

  Returns:
    (frame t's carry, mask [H, W] uint8 object ids, `Details`).
  """
  seen = observe_jit(variables, carry, frame, spx, settings._replace(canvas=(0, 0)))
  return decide_jit(variables, first, carry, seen, settings)


def launch(variables, first, carry, frame, spx, newest, ids, min_boxes, settings):
  """A frame's host work in the engine's loop: its canvas from the newest mask the host holds
  (`canvas`), the frame (and host superpixels, checked against the capacity) copied in, and
  `step` queued, without waiting for the device.

  Args:
    variables, first, carry: as `step`.
    frame: [H, W, 3] uint8 RGB (host).
    spx: [H, W] int host superpixels, or None for the JAX SLIC.
    newest: [H, W] uint8 object ids of the newest mask on the host.
    ids, min_boxes: as `canvas`.
    settings: static settings (their canvas is replaced by this frame's).

  Returns:
    (the canvas, frame t's carry, mask, `Details`), the last three on the device.
  """
  size = canvas(newest, ids, min_boxes, settings.max_canvas, settings.canvas_sizes)
  if spx is not None:
    if spx.max() > settings.superpixel_capacity:
      raise ValueError(
        f'{spx.max()} superpixels exceed the capacity {settings.superpixel_capacity} '
        '(config.inference.superpixel_capacity)'
      )
    spx = jax.device_put(np.asarray(spx, np.int32))
  carry, mask, details = step(
    variables, first, carry, jax.device_put(frame), spx, settings._replace(canvas=size)
  )
  return size, carry, mask, details
