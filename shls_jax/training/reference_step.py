"""The `reference` training step: one SHLS training iteration on a T-frame pseudo-sequence
(batch 1), computed frame by frame with the memory in the loop: loss, gradients and running
statistics (the optimiser step is `train_step.apply_gradients`, shared with the pmap step).

The iteration runs in two passes. `forward` runs the network in train mode frame by frame with
the host-side memory in between (fit on frame 0, predict with each frame's ground truth, the
confident update after each frame but the last) and records every host-side value the loss
depends on: merged frame-0 superpixels, pools, triplets, ROIs and attention maps. These reach
the loss only as constants (the memory sees detached superfeatures), so `loss_fn` can recompute
the network parts from them as a pure function of the parameters and be differentiated.

Gradient flow: frame-0 features enter the decoder detached as "first-frame" features; the
previous frame's features are not detached (a frame's cross-entropy reaches the previous
frame's backbone pass); the previous logits are detached. Every frame is a separate backbone
call and every object a separate decoder call, each with its own batch statistics, so running
statistics are updated call by call in the iteration's order.

Conventions: images [T, H, W, 3] float normalised (NHWC); superpixel maps [T, H, W] int,
labels 1..N per frame; class maps [T, H, W] int, 1 = background, 2..num_cls = objects; boxes
[rmin, rmax, cmin, cmax] with exclusive max; logits [H, W, num_cls], channel j = class j + 1.
Loss = sum(NT-Xent) / T + sum(CE) / (T - 1).

The step runs in JAX's default float dtype: under `jax_enable_x64` with float64 variables it is
the reference's iteration in float64, with the reference's own float32 casts kept (the host
memory and its attention maps, the first mask and the previous logits).

Longer than most modules (about 470 lines): the reference's iteration is one faithful sequence
of stages (embedding, memory, per-object decoding, losses, BatchNorm statistics) kept together so
that it can be read against the reference line by line.
"""

import dataclasses
import functools
from typing import FrozenSet, Optional, Sequence, Tuple

import flax
import jax
import jax.numpy as jnp
import numpy as np

from shls_jax.crops import object_crops
from shls_jax.memory import faiss_memory as memory_lib
from shls_jax.memory import frame_rules
from shls_jax.model import shls
from shls_jax.model.decoder import aggregate_objects
from shls_jax.superpixels.pools import merge_with_annotation, mode_pools
from shls_jax.training import losses, optimizer

Box = Tuple[int, int, int, int]


@dataclasses.dataclass(frozen=True)
class StepOptions:
  """Loss switches and frozen module groups.

  Attributes:
    ntxent: include the NT-Xent term.
    ce: include the cross-entropy term.
    frozen: names of `optimizer.FROZEN_GROUPS`; frozen groups get zero gradients, and their
      BatchNorms run in eval mode (running statistics unchanged).
  """

  ntxent: bool = True
  ce: bool = True
  frozen: FrozenSet[str] = frozenset()

  def __post_init__(self):
    object.__setattr__(self, 'frozen', optimizer.check_frozen(self.frozen))

  @classmethod
  def from_config(cls, config) -> 'StepOptions':
    """The options of a training-step config (`defaults.get_config()` fields)."""
    return cls(ntxent=config.use_ntxent, ce=config.use_ce, frozen=config.frozen)


@flax.struct.dataclass
class IterationConstants:
  """What the loss depends on besides the parameters (all of it detached or host-side).

  Attributes:
    images: [T, H, W, 3] float32 normalised frames.
    labels: [T, H, W] int32 class maps.
    spx: T arrays [H, W] int32, frame 0 merged with its labels, later frames as given.
    pools: T arrays [N_t] int32, class of each superpixel (frame 0: of the merged map).
    triplets: T arrays [3, M_t] int32 NT-Xent (anchor, positive, negative) indices.
    attmaps: T tuples of num_cls - 1 arrays [h, w, 4] float32, attention maps of each ROI.
    boxes: T tuples of num_cls - 1 ROIs (static).
    num_segments: T superpixel counts N_t (static).
    num_cls: classes including the background (static).
  """

  images: jax.Array
  labels: jax.Array
  spx: Tuple[jax.Array, ...]
  pools: Tuple[jax.Array, ...]
  triplets: Tuple[jax.Array, ...]
  attmaps: Tuple[Tuple[jax.Array, ...], ...]
  boxes: Tuple[Tuple[Box, ...], ...] = flax.struct.field(pytree_node=False)
  num_segments: Tuple[int, ...] = flax.struct.field(pytree_node=False)
  num_cls: int = flax.struct.field(pytree_node=False)


@dataclasses.dataclass(frozen=True)
class ForwardRecord:
  """Host-side intermediates of the forward pass (numpy).

  Attributes:
    superfeatures: T arrays [N_t, 32] float32.
    presegs: T - 1 arrays [H, W] int32, cleaned pre-segmentations of frames 1..T-1.
    preds: T - 1 arrays [H, W, num_cls] float32, aggregated log-odds of frames 1..T-1.
    confident: T - 2 arrays [N_t] bool, confident superpixels of frames 1..T-2.
  """

  superfeatures: Tuple[np.ndarray, ...]
  presegs: Tuple[np.ndarray, ...]
  preds: Tuple[np.ndarray, ...]
  confident: Tuple[np.ndarray, ...]


@flax.struct.dataclass
class LossTerms:
  """Loss terms (scalars) and the running statistics after the iteration."""

  ntxent: jax.Array
  ce: jax.Array
  batch_stats: dict


@functools.partial(jax.jit, static_argnames=('num_segments', 'train'))
def _embed(params, batch_stats, image, spx, *, num_segments: int, train: bool):
  """Embedding of one frame: image [H, W, 3], spx [H, W] -> (SHLS.embed dict, batch_stats)."""
  return shls.embed(
    {'params': params, 'batch_stats': batch_stats},
    image[None],
    spx[None],
    num_segments=num_segments,
    train=train,
  )


@functools.partial(jax.jit, static_argnames=('train',))
def _decode_object(params, batch_stats, inputs: object_crops.ObjectInputs, *, train: bool):
  """Modulator and decoder of one object's crops -> (logits [hp, wp, 2], batch_stats)."""
  return shls.decode_object({'params': params, 'batch_stats': batch_stats}, inputs, train=train)


def _decode_frame(
  params,
  batch_stats,
  first,
  prev,
  cur,
  first_mask,
  prev_logits,
  first_boxes,
  prev_boxes,
  prev_attmaps,
  cur_boxes,
  cur_attmaps,
  train: bool,
):
  """Decoder of every object of one frame, in object order, then soft aggregation.

  first, prev, cur: SHLS.embed dicts of the first (already detached), previous and current
  frames; first_mask, prev_logits: [H, W, num_cls] (one-hot labels of frame 0, detached logits
  of the previous frame). Returns (log-odds [H, W, num_cls], batch_stats).
  """
  frame_hw = first_mask.shape[:2]
  pasted = []
  for k, cur_box in enumerate(cur_boxes):
    inputs, pads = object_crops.object_inputs(
      object_crops.CropSource(
        first['feat_l1'][0], first['feat_l4'][0], first_boxes[k], plane=first_mask[..., k + 1]
      ),
      object_crops.CropSource(
        prev['feat_l1'][0],
        prev['feat_l4'][0],
        prev_boxes[k],
        plane=prev_logits[..., k + 1],
        attention=prev_attmaps[k],
      ),
      object_crops.CropSource(
        cur['feat_l1'][0], cur['feat_l4'][0], cur_box, attention=cur_attmaps[k]
      ),
    )
    logits, batch_stats = _decode_object(params, batch_stats, inputs, train=train)
    pasted.append(object_crops.paste_back(logits, pads, cur_box, frame_hw))
  return aggregate_objects(jnp.stack(pasted)), batch_stats


def _one_hot(labels, num_cls: int) -> jax.Array:
  """[H, W] classes 1..num_cls -> [H, W, num_cls] float32 (channel j = class j + 1)."""
  return jax.nn.one_hot(jnp.asarray(labels) - 1, num_cls, dtype=jnp.float32)


def _network_pass(
  params, batch_stats, c: IterationConstants, modes: Tuple[bool, bool], rois_of, after_decode
):
  """The network parts of the iteration, frame by frame in order.

  modes: (train the embedding's BatchNorms, train the decoder's). rois_of(t, superfeatures
  [N_t, 32]) -> (boxes, attmaps) of frame t runs right after frame t's embedding;
  after_decode(t, superfeatures, log_odds [H, W, num_cls]) after its decoder.

  Returns (sum of NT-Xent, sum of CE, batch_stats, [T superfeatures], [T - 1 log-odds]).
  """
  train_embedding, train_decoder = modes
  # One capacity for every frame, so that the frames share one compiled embedding.
  capacity = max(c.num_segments)
  first_mask = _one_hot(c.labels[0], c.num_cls)
  ntxent, ce = jnp.zeros(()), jnp.zeros(())
  boxes, attmaps, superfeatures, preds = [], [], [], []
  first = prev = None
  prev_logits = first_mask
  for t in range(c.images.shape[0]):
    cur, batch_stats = _embed(
      params, batch_stats, c.images[t], c.spx[t], num_segments=capacity, train=train_embedding
    )
    sf = cur['superfeatures'][0, : c.num_segments[t]]
    superfeatures.append(sf)
    ntxent = ntxent + losses.ntxent_loss(sf, c.pools[t], c.triplets[t])
    frame_boxes, frame_attmaps = rois_of(t, sf)
    boxes.append(frame_boxes)
    attmaps.append(frame_attmaps)
    if t == 0:
      first = jax.tree_util.tree_map(jax.lax.stop_gradient, cur)
    else:
      log_odds, batch_stats = _decode_frame(
        params,
        batch_stats,
        first,
        prev,
        cur,
        first_mask,
        prev_logits,
        boxes[0],
        boxes[t - 1],
        attmaps[t - 1],
        boxes[t],
        attmaps[t],
        train_decoder,
      )
      ce = ce + losses.cross_entropy(log_odds, c.labels[t])
      # The reference hands the previous logits to the decoder as `.float()` (float32): a no-op
      # in float32, a rounding in a float64 run.
      prev_logits = jax.lax.stop_gradient(log_odds).astype(jnp.float32)
      preds.append(log_odds)
      after_decode(t, sf, log_odds)
    prev = cur
  return ntxent, ce, batch_stats, superfeatures, preds


def _loss(params, batch_stats, constants: IterationConstants, weights, modes):
  """Loss with traced term weights [2] (NT-Xent, CE) and static BatchNorm modes."""
  c = constants
  ntxent, ce, batch_stats, _, _ = _network_pass(
    params, batch_stats, c, modes, lambda t, _: (c.boxes[t], c.attmaps[t]), lambda *_: None
  )
  t = c.images.shape[0]
  terms = LossTerms(ntxent / t, ce / (t - 1), batch_stats)
  loss = jnp.where(weights[0], terms.ntxent, 0.0) + jnp.where(weights[1], terms.ce, 0.0)
  return loss, terms


def _weights(options: StepOptions) -> jax.Array:
  return jnp.array([options.ntxent, options.ce])


def _modes(options: StepOptions) -> Tuple[bool, bool]:
  return optimizer.trains_embedding(options.frozen), optimizer.trains_decoder(options.frozen)


def loss_fn(
  params, batch_stats, constants: IterationConstants, options: StepOptions = StepOptions()
):
  """Loss of the iteration as a pure function of the parameters.

  Args:
    params, batch_stats: network variables before the iteration.
    constants: from `forward` (run with the same options).
    options: loss switches and frozen groups.

  Returns:
    (loss scalar, LossTerms(ntxent = sum / T, ce = sum / (T - 1), batch_stats after the
    iteration)). Both terms are reported whether or not they are switched on.
  """
  return _loss(params, batch_stats, constants, _weights(options), _modes(options))


def _check_sequence(images, spx, labels, num_cls: int):
  """Validated numpy copies: images in JAX's default float dtype (float32, or float64 under
  `jax_enable_x64`), spx and labels int32."""
  float_dtype = jax.dtypes.canonicalize_dtype(np.float64)
  images, spx, labels = np.asarray(images, float_dtype), np.asarray(spx), np.asarray(labels)
  if images.ndim != 4 or images.shape[-1] != 3:
    raise ValueError(f'images must be [T, H, W, 3]; got shape {images.shape}')
  if spx.shape != images.shape[:3] or labels.shape != images.shape[:3]:
    raise ValueError(
      f'superpixels {spx.shape} and labels {labels.shape} must both be '
      f'{images.shape[:3]} ([T, H, W])'
    )
  if images.shape[0] < 2:
    raise ValueError(f'a training iteration needs at least 2 frames; got {images.shape[0]}')
  if labels.min() < 1 or labels.max() > num_cls:
    raise ValueError(
      f'labels must lie in 1..num_cls={num_cls}; found {labels.min()}..{labels.max()}'
    )
  return images, spx.astype(np.int32), labels.astype(np.int32)


def forward(
  variables,
  images,
  spx,
  labels,
  num_cls: int,
  *,
  triplets: Optional[Sequence[np.ndarray]] = None,
  rng: Optional[np.random.Generator] = None,
  options: StepOptions = StepOptions(),
) -> Tuple[IterationConstants, ForwardRecord]:
  """Runs the iteration once with the memory in the loop and records its constants.

  Args:
    variables: {'params', 'batch_stats'} before the iteration.
    images: [T, H, W, 3] float32 normalised frames, T >= 2.
    spx: [T, H, W] int superpixels, dense labels 1..N_t per frame.
    labels: [T, H, W] int classes 1..num_cls; every class must occur in frame 0.
    num_cls: number of classes including the background.
    triplets: optional T arrays [3, M_t] of NT-Xent row indices; by default drawn with
      `losses.random_triplets` from `rng`.
    rng: numpy generator for the default triplets (default: np.random.default_rng()).
    options: loss switches and frozen groups (they set the BatchNorm modes).

  Returns:
    (IterationConstants, ForwardRecord).
  """
  images, spx, labels = _check_sequence(images, spx, labels, num_cls)
  num_frames = images.shape[0]
  if triplets is not None and len(triplets) != num_frames:
    raise ValueError(f'{len(triplets)} triplet arrays for {num_frames} frames')
  frame_spx = [merge_with_annotation(spx[0], labels[0])] + list(spx[1:])
  pools = [mode_pools(s, lab) for s, lab in zip(frame_spx, labels)]
  if triplets is None:
    rng = rng if rng is not None else np.random.default_rng()
    triplets = [losses.random_triplets(p, rng) for p in pools]
  known = IterationConstants(
    images=jnp.asarray(images),
    labels=jnp.asarray(labels),
    spx=tuple(jnp.asarray(s) for s in frame_spx),
    pools=tuple(jnp.asarray(p) for p in pools),
    triplets=tuple(jnp.asarray(np.asarray(x), jnp.int32) for x in triplets),
    attmaps=(),
    boxes=(),
    num_segments=tuple(int(s.max()) for s in frame_spx),
    num_cls=num_cls,
  )

  state = {'memory': None, 'prev_mask': labels[0]}
  boxes, attmaps, presegs, confident = [], [], [], []

  def rois_of(t, sf):
    sf = np.asarray(sf)
    if t == 0:
      state['memory'] = memory_lib.fit(sf, pools[0], num_cls)
    state['memory'], pred = memory_lib.predict(
      state['memory'], sf, frame_spx[t], state['prev_mask'], annotation=labels[t]
    )
    boxes.append(tuple(tuple(int(v) for v in box) for box in pred.boxes))
    attmaps.append(tuple(jnp.asarray(a) for a in pred.attmaps))
    if t > 0:
      presegs.append(pred.preseg)
    return boxes[t], attmaps[t]

  def after_decode(t, sf, log_odds):
    log_odds = np.asarray(log_odds)
    state['prev_mask'] = np.argmax(log_odds, axis=-1).astype(np.int32) + 1
    if t < num_frames - 1:
      flags = frame_rules.confident_superpixels(frame_spx[t], presegs[-1], log_odds)
      confident.append(flags)
      state['memory'] = memory_lib.memorise_confident(
        state['memory'], np.asarray(sf), frame_spx[t], presegs[-1], flags
      )

  _, _, _, superfeatures, preds = _network_pass(
    variables['params'], variables['batch_stats'], known, _modes(options), rois_of, after_decode
  )
  constants = known.replace(boxes=tuple(boxes), attmaps=tuple(attmaps))
  record = ForwardRecord(
    superfeatures=tuple(np.asarray(s) for s in superfeatures),
    presegs=tuple(presegs),
    preds=tuple(np.asarray(p) for p in preds),
    confident=tuple(confident),
  )
  return constants, record


@functools.partial(jax.jit, static_argnames=('modes',))
def _gradients(params, batch_stats, constants, weights, frozen, modes):
  (loss, terms), grads = jax.value_and_grad(_loss, has_aux=True)(
    params, batch_stats, constants, weights, modes
  )
  grads = jax.tree_util.tree_map(lambda g, f: jnp.where(f, jnp.zeros_like(g), g), grads, frozen)
  return loss, terms, grads


def gradients(
  params, batch_stats, constants: IterationConstants, options: StepOptions = StepOptions()
):
  """(loss, LossTerms, grads like params) of `loss_fn`; frozen groups get exactly zero.

  Loss switches and frozen groups are traced (one compilation serves them all); only the
  BatchNorm modes are static.
  """
  return _gradients(
    params,
    batch_stats,
    constants,
    _weights(options),
    optimizer.frozen_mask(params, options.frozen),
    _modes(options),
  )


def release_compiled() -> None:
  """Drops the compiled programs of earlier iterations.

  The loss and the decoder compile once per combination of crop, superpixel and triplet counts,
  which nearly every iteration changes. Kept, they grew a demo-config run by about 0.45 GB of
  host memory per step (a 90-step run ran out of memory); released after every iteration, by
  about 0.09 GB per step (5.4 -> 7.4 GB over steps 6..30). A training loop calls this after
  every iteration.
  """
  _gradients.clear_cache()
  _decode_object.clear_cache()


@dataclasses.dataclass(frozen=True)
class StepResult:
  """One iteration: loss and its terms (scalars), gradients (like params), running statistics
  after the iteration, and the forward pass's constants and record."""

  loss: jax.Array
  ntxent: jax.Array
  ce: jax.Array
  grads: dict
  batch_stats: dict
  constants: IterationConstants
  record: ForwardRecord


def reference_step(
  variables,
  images,
  spx,
  labels,
  num_cls: int,
  *,
  triplets: Optional[Sequence[np.ndarray]] = None,
  rng: Optional[np.random.Generator] = None,
  options: StepOptions = StepOptions(),
) -> StepResult:
  """Loss, gradients and new running statistics of one iteration (arguments as `forward`)."""
  constants, record = forward(
    variables, images, spx, labels, num_cls, triplets=triplets, rng=rng, options=options
  )
  loss, terms, grads = gradients(variables['params'], variables['batch_stats'], constants, options)
  return StepResult(
    loss=loss,
    ntxent=terms.ntxent,
    ce=terms.ce,
    grads=grads,
    batch_stats=terms.batch_stats,
    constants=constants,
    record=record,
  )
