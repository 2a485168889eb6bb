"""The static-shape SHLS training step: train state, optimiser with frozen module groups, losses
and one pure `train_step`, for `jax.pmap` or jitted over a mesh (`sharded_train_step`).

One step on a batch of T-frame pseudo-sequences (per device: image [B, T, H, W, 3] float32
normalised; spx [B, T, H, W] int32, frame 0 merged with its labels; label [B, T, H, W] int32,
1 = background; pools [B, T, N] int32, 0 = padding; spx_valid [B, T, N] bool; num_cls [B] int32,
classes incl. the background, <= object_capacity + 1):
  1. the backbone and superfeature heads run once on all B x T frames;
  2. NT-Xent per frame on the superfeatures labelled by their pools, with random triplets drawn on
     device (`sample_triplets`) or all pairs (`ntxent_mode='all_pairs'`);
  3. per sequence, the traced memory (`shls_jax.memory.training_memory`) is fitted on frame 0 and
     predicts every frame with ground-truth ROIs; frames 1..T-1 in order decode all objects at once
     (vmap over `object_capacity` objects, absent ones masked) from crops resampled to the static
     `crop_size` (`crops.static_crops`), paste them back, soft-aggregate and take the CE
     against the labels; the confident superpixels of frames 1..T-2 join the memory;
  4. loss = sum(NT-Xent)/T + sum(CE)/(T-1) per sequence, averaged over the batch; grads and
     batch statistics are averaged over the 'batch' axis; Adam.

Deviations from the reference's iteration (section 6b of the reference notes): BatchNorm batch
statistics of the backbone are taken over all B x T frames of a device at once (the reference runs
one frame per call); decoder crops have a static size (resampled from their ROI); the decoder's
running statistics take one update per valid object crop in (sequence, frame, object) order from
crop statistics computed in parallel, which is what sequential calls give; the memory's
deviations are listed in `shls_jax.memory.training_memory`.

Gradient flow as the reference: frame-0 features reach the decoder detached as "first" inputs,
the previous frame's features are not detached, memory inputs and previous logits are.

About 400 lines: the pure step and the traced pieces it alone uses.
"""

import functools
from typing import Any, Dict, Optional, Tuple

import flax
import flax.jax_utils
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax.training import train_state
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from shls_jax.crops import object_crops, static_crops
from shls_jax.data import step_inputs
from shls_jax.memory import training_memory
from shls_jax.model import backbone, decoder, shls
from shls_jax.model.backbone import BN_MOMENTUM
from shls_jax.training import losses, optimizer

# Logit given to classes beyond a sequence's num_cls before the CE, so they take no probability.
_ABSENT_CLASS_LOGIT = -1e9


class TrainState(train_state.TrainState):
  """Flax TrainState with the BatchNorm statistics, the base random key of the run and, when
  `ema_decay` > 0, the moving average of the variables.

  Attributes:
    batch_stats: BatchNorm running statistics.
    rng: base key of the steps' randomness.
    ema: None, or {'params', 'batch_stats'}: exponential moving averages of both, updated after
      every step (`update_average`); validation and export use them (`evaluated_variables`).
    ema_decay: the average's decay (static; 0 = no average).
  """

  batch_stats: Any
  rng: jax.Array
  ema: Any = None
  ema_decay: float = flax.struct.field(pytree_node=False, default=0.0)


def replicate(state: TrainState) -> TrainState:
  """The state copied onto every local device, placed as `train_step`'s pmap outputs are (so
  the second step does not compile again for a different input placement)."""
  return jax.pmap(lambda x: x, axis_name='batch')(flax.jax_utils.replicate(state))


def _check_config(config) -> None:
  try:
    optimizer.check_frozen(config.frozen)
  except ValueError as e:
    raise ValueError(f'config.frozen: {e}') from None
  if config.ntxent_mode not in losses.NTXENT_MODES:
    raise ValueError(
      f'config.ntxent_mode must be one of {losses.NTXENT_MODES}, got {config.ntxent_mode!r}'
    )
  if config.get('dtype', 'float32') not in backbone.COMPUTE_DTYPES:
    raise ValueError(f'config.dtype must be one of {backbone.COMPUTE_DTYPES}, got {config.dtype!r}')
  if config.conv_weight_gradient not in backbone.WEIGHT_GRADIENTS:
    raise ValueError(
      f'config.conv_weight_gradient must be one of {backbone.WEIGHT_GRADIENTS}, '
      f'got {config.conv_weight_gradient!r}'
    )
  if any(s % object_crops.MULTIPLE for s in config.crop_size):
    raise ValueError(
      f'config.crop_size {tuple(config.crop_size)} must be multiples of {object_crops.MULTIPLE}'
    )


def create_train_state(
  rng: jax.Array, config: ml_collections.ConfigDict, variables: Optional[Dict[str, Any]] = None
) -> TrainState:
  """Train state of `shls.SHLS` (unreplicated).

  Args:
    rng: PRNG key; initialises the variables (when not given) and seeds the steps' randomness.
    config: `defaults.get_config()` fields.
    variables: optional {'params', 'batch_stats'} to start from (e.g. a converted checkpoint).

  Returns:
    TrainState with `optimizer.create_optimizer(params, config)`.
  """
  _check_config(config)
  init_rng, step_rng = jax.random.split(rng)
  if variables is None:
    variables = shls.init_variables(init_rng)
  params = flax.core.unfreeze(variables['params'])
  batch_stats = flax.core.unfreeze(variables['batch_stats'])
  ema = None
  if config.ema_decay > 0:
    ema = jax.tree.map(jnp.array, {'params': params, 'batch_stats': batch_stats})
  return TrainState.create(
    apply_fn=shls.SHLS().apply,
    params=params,
    tx=optimizer.create_optimizer(params, config),
    batch_stats=batch_stats,
    rng=step_rng,
    ema=ema,
    ema_decay=float(config.ema_decay),
  )


def evaluated_variables(state: TrainState) -> Dict[str, Any]:
  """{'params', 'batch_stats'} that validation and export use: the moving averages when the
  state keeps them, else the current variables."""
  if state.ema is not None:
    return dict(state.ema)
  return {'params': state.params, 'batch_stats': state.batch_stats}


def update_average(state: TrainState) -> TrainState:
  """Moves `state.ema` towards the current variables (no-op without an average).

  The average is bias-corrected as Adam's moments are: after s steps it is the mean of the
  iterates 1..s weighted by ema_decay ** age, normalised, so the initial variables take no
  weight. In place, that is a decay of d (1 - d^(s-1)) / (1 - d^s) at step s (0 at the first
  step). Integer leaves take the current value.
  """
  if state.ema is None:
    return state
  d = state.ema_decay
  step = state.step.astype(jnp.float32)  # the count after this update, >= 1
  decay = d * (1.0 - d ** (step - 1.0)) / (1.0 - d**step)

  def move(avg, new):
    if not jnp.issubdtype(new.dtype, jnp.floating):
      return new
    return (decay * avg + (1.0 - decay) * new).astype(new.dtype)

  current = {'params': state.params, 'batch_stats': state.batch_stats}
  return state.replace(ema=jax.tree.map(move, state.ema, current))


def _decode_objects(params, batch_stats, inputs: object_crops.ObjectInputs, train: bool):
  """Decoder on every object's static inputs (leading axis K) -> (logits [K, h, w, 2], the
  batch_stats each object's call would leave, leading axis K)."""
  variables = {'params': params, 'batch_stats': batch_stats}
  logits, stats = jax.vmap(lambda x: shls.decode_object(variables, x, train=train))(inputs)
  # The CE and the aggregation take float32 logits whatever the layers computed in.
  return logits.astype(jnp.float32), stats


def _sequence_ce(params, batch_stats, sample, *, config):
  """Memory, decoding and CE of one sequence.

  Frames 1..T-1 are unrolled in Python (T is small): XLA:CPU runs the decoder's convolutions
  inside a `lax.scan` body about 30x slower than unrolled, which outweighs the longer compile.
  After frame t < T-1 the confident superpixels of t join the memory in slots
  t x N..(t + 1) x N - 1; the memory is not updated after the last frame.

  Args:
    sample: dict of one sequence: feat_l1 [T, H, W, 67], feat_l4 [T, h4, w4, 259],
      superfeatures [T, N, S], spx, label [T, H, W], pools [T, N], spx_valid [T, N], num_cls [].

  Returns:
    (sum of the CE over frames 1..T-1, decoder batch_stats per call with leading axes
    [T - 1, K], object validity [T - 1, K] bool).
  """
  num_frames, height, width = sample['label'].shape
  num_segments = sample['pools'].shape[-1]
  num_classes = config.object_capacity + 1
  class_valid = jnp.arange(1, num_classes + 1) <= sample['num_cls']
  objects = jnp.arange(2, num_classes + 1)
  sf = sample['superfeatures']
  memory = training_memory.fit(
    sf[0],
    jnp.where(sample['spx_valid'][0], sample['pools'][0], 0),
    capacity=training_memory.memory_capacity(num_segments, num_frames),
    num_classes=num_classes,
    iterations=config.kmeans_iterations,
  )

  def predict(memory, t):
    knn_pred, knn_scores = training_memory.knn_predict(memory, sf[t])
    table = training_memory.attention_table(
      knn_scores, training_memory.centroid_scores(memory, sf[t]), class_valid
    )
    boxes = jax.vmap(lambda c: training_memory.annotation_box(sample['label'][t] == c))(objects)
    return knn_pred, training_memory.pixel_map(table, sample['spx'][t]), boxes

  _, first_att, first_boxes = predict(memory, 0)
  first_mask = (sample['label'][0][None] == objects[:, None, None]).astype(jnp.float32)
  first = object_crops.CropSource(
    jax.lax.stop_gradient(sample['feat_l1'][0]),
    jax.lax.stop_gradient(sample['feat_l4'][0]),
    first_boxes,
    plane=first_mask,
  )
  # Boxes [K, 4], planes [K, H, W], attention maps [H, W, K, 4]; features shared.
  per_object = object_crops.CropSource(l1=None, l4=None, box=0, plane=0, attention=2)
  crops = jax.vmap(
    functools.partial(static_crops.object_inputs, size=tuple(config.crop_size)),
    in_axes=(per_object, per_object, per_object),
  )
  train = optimizer.trains_decoder(config.frozen)
  absent = jnp.array([object_crops.OUTSIDE_ROI_BACKGROUND, 0.0], jnp.float32)

  prev_logits, prev_att, prev_boxes = first_mask, first_att, first_boxes
  ces, stats = [], []
  for t in range(1, num_frames):
    knn_pred, att, boxes = predict(memory, t)
    inputs = crops(
      first,
      object_crops.CropSource(
        sample['feat_l1'][t - 1],
        sample['feat_l4'][t - 1],
        prev_boxes,
        plane=prev_logits,
        attention=prev_att,
      ),
      object_crops.CropSource(sample['feat_l1'][t], sample['feat_l4'][t], boxes, attention=att),
    )
    logits, frame_stats = _decode_objects(params, batch_stats, inputs, train)
    pasted = jax.vmap(static_crops.paste, in_axes=(0, 0, None))(logits, boxes, (height, width))
    pasted = jnp.where(class_valid[1:, None, None, None], pasted, absent)
    logodds = decoder.aggregate_objects(pasted)
    ces.append(
      losses.cross_entropy(jnp.where(class_valid, logodds, _ABSENT_CLASS_LOGIT), sample['label'][t])
    )
    stats.append(frame_stats)
    if t < num_frames - 1:
      # Raw kNN pre-segmentation (no convex-hull cleaning on device): its pools are knn_pred.
      preseg = training_memory.pixel_map(knn_pred, sample['spx'][t])
      confident = training_memory.confident_superpixels(
        sample['spx'][t], preseg, logodds, num_segments=num_segments
      )
      confident &= sample['spx_valid'][t]
      memory = training_memory.add(
        memory,
        sf[t],
        jnp.where(confident, knn_pred, 0),
        offset=num_segments * t,
        iterations=config.kmeans_iterations,
      )
    prev_logits = jax.lax.stop_gradient(jnp.moveaxis(logodds[..., 1:], -1, 0))
    prev_att, prev_boxes = att, boxes

  stats = jax.tree.map(lambda *x: jnp.stack(x), *stats)
  valid = jnp.broadcast_to(class_valid[1:], (num_frames - 1, config.object_capacity))
  return sum(ces), stats, valid


def _sequential_running_stats(old, calls, valid):
  """Running statistics after the valid calls in order, from what each call alone would leave.

  old: batch_stats tree; calls: same tree with a leading axis [L] (one entry per call, each
  started from old); valid: [L] bool. A float statistic takes
  new = (1 - m) new + (call - (1 - m) old) per valid call (a momentum-m step towards that call's
  batch value); an integer counter adds call - old.
  """

  def combine(o, c):
    def step(acc, xs):
      value, ok = xs
      if jnp.issubdtype(o.dtype, jnp.integer):
        nxt = acc + (value - o)
      else:
        nxt = (1.0 - BN_MOMENTUM) * acc + (value - (1.0 - BN_MOMENTUM) * o)
      return jnp.where(ok, nxt, acc), None

    return jax.lax.scan(step, o, (c, valid))[0]

  return jax.tree.map(combine, old, calls)


def _loss_fn(params, batch_stats, batch, rng, *, config):
  """Mean loss over the sequences of batch (per-device arrays) and its aux outputs."""
  b, t, h, w = batch['label'].shape
  num_segments = batch['pools'].shape[-1]
  out, new_stats = shls.embed(
    {'params': params, 'batch_stats': batch_stats},
    batch['image'].reshape(b * t, h, w, 3),
    batch['spx'].reshape(b * t, h, w),
    num_segments=num_segments,
    train=optimizer.trains_embedding(config.frozen),
  )
  new_stats = dict(new_stats)
  out = {k: v.reshape((b, t) + v.shape[1:]) for k, v in out.items()}
  labels = jnp.where(batch['spx_valid'], batch['pools'], 0)

  ntxent = jnp.zeros((b,))
  if config.use_ntxent:
    keys = jax.random.split(rng, b * t).reshape(b, t, -1)
    per_frame = functools.partial(
      losses.frame_ntxent,
      mode=config.ntxent_mode,
      per_anchor=config.triplets_per_anchor,
      temperature=config.ntxent_temperature,
    )
    ntxent = jax.vmap(jax.vmap(per_frame))(keys, out['superfeatures'], labels).sum(1) / t

  ce = jnp.zeros((b,))
  if config.use_ce:
    sample = dict(
      feat_l1=out['feat_l1'],
      feat_l4=out['feat_l4'],
      superfeatures=out['superfeatures'],
      spx=batch['spx'],
      label=batch['label'],
      pools=batch['pools'],
      spx_valid=batch['spx_valid'],
      num_cls=batch['num_cls'],
    )
    decoder_modules = optimizer.FROZEN_GROUPS['modulator'] + optimizer.FROZEN_GROUPS['decoder']
    decoder_stats = {k: batch_stats[k] for k in decoder_modules if k in batch_stats}
    ce_sum, calls, valid = jax.vmap(
      functools.partial(_sequence_ce, params, decoder_stats, config=config)
    )(sample)
    ce = ce_sum / (t - 1)
    calls = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[3:]), calls)
    new_stats.update(_sequential_running_stats(decoder_stats, calls, valid.reshape(-1)))

  loss = jnp.mean(ntxent + ce)
  return loss, (new_stats, dict(loss=loss, ntxent=jnp.mean(ntxent), ce=jnp.mean(ce)))


def compute_gradients(
  params,
  batch_stats,
  batch: Dict[str, jax.Array],
  rng: jax.Array,
  *,
  config: ml_collections.ConfigDict,
):
  """Gradients of the mean loss over one device's batch (no cross-device reduction).

  Args:
    params, batch_stats: model variables.
    batch: per-device batch (see the module docstring; extra keys are ignored).
    rng: this device's key for the step.
    config: `defaults.get_config()` fields.

  Returns:
    (grads, new batch_stats, metrics dict of scalars: loss, ntxent, ce).
  """
  grad_fn = jax.grad(functools.partial(_loss_fn, config=config), has_aux=True)
  with (
    backbone.conv_weight_gradient(config.conv_weight_gradient),
    backbone.compute_dtype(config.get('dtype', 'float32')),
  ):
    grads, (new_stats, metrics) = grad_fn(params, batch_stats, batch, rng)
  return grads, new_stats, metrics


def _l2_norm(tree) -> jax.Array:
  return jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(tree)))


def apply_gradients(state: TrainState, grads, batch_stats, metrics):
  """Adam step with averaged grads, then the moving average (`update_average`); returns (new
  state, metrics with the L2 norms of grads, params and updates added)."""
  new_state = update_average(state.apply_gradients(grads=grads, batch_stats=batch_stats))
  updates = jax.tree.map(jnp.subtract, new_state.params, state.params)
  return new_state, dict(
    metrics,
    grad_norm=_l2_norm(grads),
    param_norm=_l2_norm(new_state.params),
    update_norm=_l2_norm(updates),
  )


def _pmean_float(x: jax.Array) -> jax.Array:
  """Mean over the 'batch' axis of float arrays; integer counters are equal on every device."""
  return jax.lax.pmean(x, 'batch') if jnp.issubdtype(x.dtype, jnp.floating) else x


def train_step(
  state: TrainState,
  batch: Dict[str, jax.Array],
  *,
  config: ml_collections.ConfigDict,
  inputs: Optional[step_inputs.Settings] = None,
) -> Tuple[TrainState, Dict[str, jax.Array]]:
  """One optimisation step over the 'batch' axis: pmap it with that axis name, or run it under
  `sharded_train_step` (see the module docstring).

  With `inputs` the batch holds frames and labels only and the step computes the superpixels
  first (`step_inputs.complete`).

  Randomness: fold_in(state.rng, state.step), then fold_in(axis_index('batch')).
  Returns (new state, metrics averaged over devices: loss, ntxent, ce, grad_norm, param_norm,
  update_norm, and with `inputs` spx_overflow).
  """
  _check_config(config)
  rng = jax.random.fold_in(jax.random.fold_in(state.rng, state.step), jax.lax.axis_index('batch'))
  extra = {}
  if inputs is not None:
    batch, extra['spx_overflow'] = step_inputs.complete(batch, inputs)
  grads, batch_stats, metrics = compute_gradients(
    state.params, state.batch_stats, batch, rng, config=config
  )
  metrics = dict(metrics, **extra)
  grads, batch_stats, metrics = jax.tree.map(_pmean_float, (grads, batch_stats, metrics))
  return apply_gradients(state, grads, batch_stats, metrics)


def batch_mesh() -> Mesh:
  """A one-axis mesh named 'batch' over every device of every process."""
  return jax.make_mesh((jax.device_count(),), ('batch',))


def sharded_train_step(
  config: ml_collections.ConfigDict, mesh: Mesh, inputs: Optional[step_inputs.Settings] = None
):
  """`train_step` jitted over `mesh`: the state replicated, the batch split on its leading axis.

  Each device runs the pmap step's body on its slice (`jax.shard_map`), so the loss, gradients
  and BatchNorm statistics are those of the pmap step with the same devices; the state is
  donated.

  Returns:
    step(state placed by `place_state`, batch from `place_batch`) -> (state, metrics).
  """
  body = functools.partial(train_step, config=config, inputs=inputs)
  replicated = PartitionSpec()
  mapped = jax.shard_map(
    body,
    mesh=mesh,
    in_specs=(replicated, PartitionSpec('batch')),
    out_specs=(replicated, replicated),
    # Every output is equal on all devices (floats pmean-ed, integer counters equal by
    # construction), as the replicated out_specs state; the step asserts it, not the tracer.
    check_vma=False,
  )
  return jax.jit(mapped, donate_argnums=(0,))


def place_state(state: TrainState, mesh: Mesh) -> TrainState:
  """The (host, unreplicated) state copied onto every device of `mesh`; every process passes
  the same state."""
  return jax.device_put(state, NamedSharding(mesh, PartitionSpec()))


def place_batch(batch: Dict[str, np.ndarray], mesh: Mesh) -> Dict[str, jax.Array]:
  """A process's pipeline batch ([local devices, B, ...]) as one global batch split over `mesh`.

  The local devices' slices are concatenated along the leading axis ([local devices x B, ...])
  and `jax.make_array_from_process_local_data` assembles the processes' parts.
  """
  sharding = NamedSharding(mesh, PartitionSpec('batch'))

  def place(x):
    x = np.asarray(x)
    return jax.make_array_from_process_local_data(sharding, x.reshape((-1,) + x.shape[2:]))

  return jax.tree.map(place, batch)
