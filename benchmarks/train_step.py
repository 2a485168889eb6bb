"""Throughput and per-stage profile of the pmapped training step (`shls_jax.training.train_step`)
on synthetic sequences.

Frames of 256x256 (T = 3), 300 block superpixels padded to a capacity of 512, three objects.
Prints steps/s and sequences/s after warm-up (compilation and the first step are not timed) for
each per-device batch size, then (`--profile`) the time of each stage of one step at per-device
batch 1, each stage jitted on its own with the step's shapes:

  backbone       the ResNet-18 on the T frames, forward and forward + backward (train mode);
  superfeatures  pooling and heads (embedding minus backbone), forward and forward + backward;
  ntxent         the contrastive loss of the T frames, forward + backward;
  memory         device-memory fit on frame 0, prediction of frames 0..T-1 and the T-2 updates
                 (no gradient flows through it);
  crops          the decoder inputs of the object slots of frames 1..T-1, forward + backward;
  decoder        modulator + decoder on those crops, forward and forward + backward, split into
                 the slots of real objects and padded slots (`object_capacity` minus objects);
  optimizer      Adam on the whole parameter tree;
  step           the whole pmapped step, for reference (stages overlap and fuse inside it).

Each stage's GFLOP/s (XLA's cost analysis over the measured time) stands next to the float32
matrix-multiply rate of this machine measured in the same run.

  .venv/bin/python benchmarks/train_step.py [--steps=3] [--batch_sizes=1,2] [--profile]
      [--objects=3] [--parallel=pmap|jit] [--config=crop_size=96,96 --config=dtype=bfloat16 ...]
"""

import functools
import itertools
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from shls_jax.crops import object_crops, static_crops
from shls_jax.data import step_inputs
from shls_jax.memory import training_memory
from shls_jax.model import backbone, shls
from shls_jax.training import defaults as step_defaults
from shls_jax.training import losses
from shls_jax.training import train_step as ts

FLAGS = flags.FLAGS
# device_check.py imports this module for `synthetic_batch` and `measure`: these flags exist only
# when this file is the program, so that they do not clash with device_check's own (--steps).
if __name__ == '__main__':
  flags.DEFINE_integer('steps', 3, 'timed steps per batch size (profile: best of as many runs)')
  flags.DEFINE_list('batch_sizes', ['1', '2'], 'per-device batch sizes')
  flags.DEFINE_integer('objects', 3, 'real objects per sequence')
  flags.DEFINE_bool('profile', False, 'per-stage profile at batch 1')
  flags.DEFINE_enum('parallel', 'pmap', ['pmap', 'jit'], 'the step kind timed (step.parallel)')
  flags.DEFINE_multi_string(
    'config',
    [],
    'FIELD=VALUE: override a step setting, e.g. --config=crop_size=96,96',
  )

SIZE = 256
FRAMES = 3
CAPACITY = 512
GRID = (15, 20)  # 300 block superpixels
BOX = (80, 64)  # object rectangles (h, w)


def synthetic_batch(
  per_device: int,
  objects: int = 3,
  seed: int = 0,
  size: int = SIZE,
  capacity: int = CAPACITY,
  grid: tuple[int, int] = GRID,
  box: tuple[int, int] = BOX,
) -> dict:
  """Pipeline-shaped batch [D, B, T, ...] of size x size frames with grid-block superpixels
  (padded to `capacity`) and `objects` rectangles of `box` (h, w)."""
  rng = np.random.default_rng(seed)
  devices = jax.local_device_count()
  shape = (devices, per_device, FRAMES)
  rows = np.arange(size) * grid[0] // size
  cols = np.arange(size) * grid[1] // size
  spx = (rows[:, None] * grid[1] + cols[None, :] + 1).astype(np.int32)
  num_spx = grid[0] * grid[1]
  label = np.ones(shape + (size, size), np.int32)
  pools = np.zeros(shape + (capacity,), np.int32)
  for index in np.ndindex(shape):
    for cls in range(2, objects + 2):
      y, x = rng.integers(0, size - box[0], 2)
      label[index][y : y + box[0], x : x + box[1]] = cls
    pools[index][:num_spx] = [
      np.bincount(label[index][spx == s]).argmax() for s in range(1, num_spx + 1)
    ]
  return dict(
    image=rng.normal(size=shape + (size, size, 3)).astype(np.float32),
    spx=np.broadcast_to(spx, shape + (size, size)).copy(),
    label=label,
    pools=pools,
    spx_valid=np.broadcast_to(np.arange(capacity) < num_spx, shape + (capacity,)).copy(),
    num_cls=np.full(shape[:2], objects + 1, np.int32),
  )


def frames_batch(batch: dict, seed: int = 0) -> dict:
  """`synthetic_batch` as the pipeline ships it with superpixels computed in the step: uint8
  frames (each class a flat colour plus noise) and labels, no superpixels."""
  rng = np.random.default_rng(seed)
  colours = rng.integers(0, 256, (int(batch['label'].max()) + 1, 3))
  noise = rng.integers(-12, 13, batch['label'].shape + (3,))
  frames = np.clip(colours[batch['label']] + noise, 0, 255).astype(np.uint8)
  keep = ('label', 'num_cls')
  return {'frames': frames, **{k: batch[k] for k in keep}}


def measure(
  per_device: int,
  steps: int,
  config,
  objects: int,
  *,
  parallel: str = 'pmap',
  inputs: step_inputs.Settings | None = None,
  **batch_shape,
) -> tuple[float, float, float]:
  """(compile + first step seconds, steps/s, sequences/s) for one per-device batch size, the
  batch ready on the devices; `parallel`: 'pmap' or 'jit' (`ts.sharded_train_step`); `inputs`:
  superpixels computed in the step from uint8 frames (`frames_batch`); `batch_shape`:
  `synthetic_batch`'s size, capacity, grid and box."""
  batch = synthetic_batch(per_device, objects, **batch_shape)
  if inputs is not None:
    batch = frames_batch(batch)
  state = ts.create_train_state(jax.random.PRNGKey(0), config)
  if parallel == 'jit':
    mesh = ts.batch_mesh()
    step = ts.sharded_train_step(config, mesh, inputs)
    state, batch = ts.place_state(state, mesh), ts.place_batch(batch, mesh)
  else:
    step = jax.pmap(
      functools.partial(ts.train_step, config=config, inputs=inputs),
      axis_name='batch',
      donate_argnums=(0,),
    )
    state, batch = ts.replicate(state), jax.pmap(lambda x: x)(batch)
  start = time.perf_counter()
  state, metrics = step(state, batch)
  jax.block_until_ready(metrics)
  warmup = time.perf_counter() - start
  start = time.perf_counter()
  for _ in range(steps):
    state, metrics = step(state, batch)
  jax.block_until_ready(metrics)
  rate = steps / (time.perf_counter() - start)
  return warmup, rate, rate * per_device * jax.local_device_count()


# Profile ------------------------------------------------------------------------------------


class Timer:
  """Times jitted functions (best of `repeats` after one warm-up call) and keeps their FLOPs."""

  def __init__(self, repeats: int):
    self.repeats = repeats

  def __call__(self, fn, *args) -> tuple[float, float]:
    """(seconds per call, GFLOP per call by XLA's cost analysis) of jit(fn)(*args)."""
    jitted = jax.jit(fn)
    compiled = jitted.lower(*args).compile()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    flops = float((cost or {}).get('flops', 0.0)) / 1e9
    jax.block_until_ready(compiled(*args))
    best = float('inf')
    for _ in range(self.repeats):
      start = time.perf_counter()
      jax.block_until_ready(compiled(*args))
      best = min(best, time.perf_counter() - start)
    return best, flops


def matmul_rate(timer: Timer, n: int = 2048) -> float:
  """This machine's float32 matrix-multiply GFLOP/s (XLA, n x n by n x n)."""
  a = jnp.asarray(np.random.default_rng(0).normal(size=(n, n)), jnp.float32)
  seconds, _ = timer(lambda x, y: jnp.dot(x, y, precision='highest'), a, a)
  return 2 * n**3 / seconds / 1e9


def _fwd_bwd(fn):
  """fn(*args) -> pytree, as a function giving the cotangents of all args for unit cotangents."""

  def run(*args):
    out, vjp = jax.vjp(fn, *args)
    return vjp(jax.tree.map(jnp.ones_like, out))

  return run


def profile_rows(config, objects: int, timer: Timer):
  """Yields (stage, seconds, GFLOP) of one step at per-device batch 1 (see the module
  docstring), each as soon as it is measured."""
  batch = {k: v[0, 0] for k, v in synthetic_batch(1, objects).items()}  # one sequence
  variables = shls.init_variables(jax.random.PRNGKey(0))
  params, stats = variables['params'], variables['batch_stats']
  num_classes = config.object_capacity + 1
  frames = jnp.asarray(batch['image'])
  spx = jnp.asarray(batch['spx'])

  def backbone(p, x):
    def apply(module, x):
      return module.spx_embedding(x, True)

    out, _ = shls.SHLS().apply(
      {'params': p, 'batch_stats': stats}, x, mutable=['batch_stats'], method=apply
    )
    return out

  def embed(p, x):
    return shls.embed(
      {'params': p, 'batch_stats': stats}, x, spx, num_segments=CAPACITY, train=True
    )[0]

  t_bb, f_bb = timer(backbone, params, frames)
  t_bbg, f_bbg = timer(_fwd_bwd(backbone), params, frames)
  t_em, f_em = timer(embed, params, frames)
  t_emg, f_emg = timer(_fwd_bwd(lambda p, x: embed(p, x)['superfeatures']), params, frames)
  yield 'backbone forward', t_bb, f_bb
  yield 'backbone forward + backward', t_bbg, f_bbg
  yield 'superfeatures forward', t_em - t_bb, f_em - f_bb
  yield 'superfeatures forward + backward', t_emg - t_bbg, f_emg - f_bbg
  out = jax.jit(embed)(params, frames)
  labels = jnp.where(batch['spx_valid'], batch['pools'], 0)
  keys = jax.random.split(jax.random.PRNGKey(1), FRAMES)
  ntxent = functools.partial(
    losses.frame_ntxent,
    mode=config.ntxent_mode,
    per_anchor=config.triplets_per_anchor,
    temperature=config.ntxent_temperature,
  )
  yield (
    ('ntxent forward + backward',)
    + timer(_fwd_bwd(lambda sf: jax.vmap(ntxent)(keys, sf, labels).sum()), out['superfeatures'])
  )

  class_valid = jnp.arange(1, num_classes + 1) <= objects + 1
  obj = jnp.arange(2, num_classes + 1)
  label = jnp.asarray(batch['label'])

  def memory_stage(sf):
    memory = training_memory.fit(
      sf[0],
      labels[0],
      capacity=training_memory.memory_capacity(CAPACITY, FRAMES),
      num_classes=num_classes,
      iterations=config.kmeans_iterations,
    )
    outputs = []
    for t in range(FRAMES):
      knn_pred, knn_scores = training_memory.knn_predict(memory, sf[t])
      table = training_memory.attention_table(
        knn_scores, training_memory.centroid_scores(memory, sf[t]), class_valid
      )
      boxes = jax.vmap(lambda c, t=t: training_memory.annotation_box(label[t] == c))(obj)
      outputs.append((training_memory.pixel_map(table, spx[t]), boxes))
      if 0 < t < FRAMES - 1:
        memory = training_memory.add(
          memory,
          sf[t],
          knn_pred,
          offset=CAPACITY * t,
          iterations=config.kmeans_iterations,
        )
    return outputs

  yield ('memory (fit, predict, update)',) + timer(memory_stage, out['superfeatures'])
  att_boxes = jax.jit(memory_stage)(out['superfeatures'])

  first_mask = (label[0][None] == obj[:, None, None]).astype(jnp.float32)
  per_object = object_crops.CropSource(l1=None, l4=None, box=0, plane=0, attention=2)
  crop_fn = jax.vmap(
    functools.partial(static_crops.object_inputs, size=tuple(config.crop_size)),
    in_axes=(per_object, per_object, per_object),
  )

  def crops(l1, l4):
    inputs = []
    for t in range(1, FRAMES):
      first = object_crops.CropSource(l1[0], l4[0], att_boxes[0][1], plane=first_mask)
      prev = object_crops.CropSource(
        l1[t - 1], l4[t - 1], att_boxes[t - 1][1], plane=first_mask, attention=att_boxes[t - 1][0]
      )
      cur = object_crops.CropSource(l1[t], l4[t], att_boxes[t][1], attention=att_boxes[t][0])
      inputs.append(crop_fn(first, prev, cur))
    return inputs

  yield ('crops forward + backward',) + timer(_fwd_bwd(crops), out['feat_l1'], out['feat_l4'])
  inputs = jax.jit(crops)(out['feat_l1'], out['feat_l4'])[0]  # one frame, K slots

  def decode(p, x):
    return jax.vmap(
      lambda i: shls.decode_object({'params': p, 'batch_stats': stats}, i, train=True)[0]
    )(x)

  one = jax.tree.map(lambda x: x[:1], inputs)
  t_dec, f_dec = timer(decode, params, one)
  t_decg, f_decg = timer(_fwd_bwd(decode), params, one)
  slots = (FRAMES - 1) * np.array([objects, config.object_capacity - objects])
  for what, count in zip(('real objects', 'padded slots'), slots):
    yield f'decoder forward, {count} {what}', count * t_dec, count * f_dec
    yield f'decoder forward + backward, {count} {what}', count * t_decg, count * f_decg

  state = ts.create_train_state(jax.random.PRNGKey(0), config)
  grads = jax.tree.map(jnp.ones_like, state.params)
  yield (
    ('optimizer',)
    + timer(lambda s, g: ts.apply_gradients(s, g, s.batch_stats, {})[0].params, state, grads)
  )


def timer_step_flops(config, objects: int) -> float:
  """GFLOP of one whole step at per-device batch 1 by XLA's cost analysis."""
  batch = {k: v[:1] for k, v in synthetic_batch(1, objects).items()}  # one device
  state = ts.create_train_state(jax.random.PRNGKey(0), config)
  step = jax.vmap(functools.partial(ts.train_step, config=config), axis_name='batch')
  lowered = jax.jit(step).lower(jax.tree.map(lambda x: np.asarray(x)[None], state), batch)
  cost = lowered.compile().cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float((cost or {}).get('flops', 0.0)) / 1e9


def print_profile(rows, peak: float, step: tuple[str, float, float]) -> None:
  """Prints the step row, then each stage's row as `rows` yields it."""
  print(f'\nfloat32 matmul rate of this machine (XLA, 2048^2): {peak:.1f} GFLOP/s')
  print(f'{"stage":<42} {"s/step":>8} {"share":>6} {"GFLOP":>8} {"GFLOP/s":>8} {"of peak":>8}')
  total = step[1]
  for name, seconds, gflop in itertools.chain([step], rows):
    rate = gflop / seconds if seconds > 0 else 0.0
    print(
      f'{name:<42} {seconds:>8.2f} {seconds / total:>6.0%} {gflop:>8.1f} {rate:>8.1f} '
      f'{rate / peak:>8.0%}',
      flush=True,
    )


def _step_config(overrides: list[str]):
  """The step's default settings with FIELD=VALUE overrides (tuples as comma-separated)."""
  config = step_defaults.get_config()
  for item in overrides:
    field, value = item.split('=', 1)
    old = config[field]
    if isinstance(old, tuple):
      config[field] = tuple(type(old[0])(v) for v in value.split(','))
    else:
      config[field] = type(old)(value)
  return config


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  config = _step_config(FLAGS.config)
  steps, objects = FLAGS.steps, FLAGS.objects
  if objects > config.object_capacity:
    raise SystemExit(f'--objects {objects} exceeds object_capacity {config.object_capacity}')
  print(
    f'{jax.local_device_count()} x {jax.devices()[0].device_kind}, {SIZE}x{SIZE}, '
    f'T={FRAMES}, capacity {CAPACITY}, {objects} objects in {config.object_capacity} slots, '
    f'crop {tuple(config.crop_size)}, k-means iterations {config.kmeans_iterations}, '
    f'conv weight gradient {config.conv_weight_gradient!r}, {FLAGS.parallel} step, '
    f'{config.dtype} compute'
  )
  print(f'{"batch/device":>12} {"warm-up s":>10} {"steps/s":>9} {"sequences/s":>12}')
  rates = {}
  for per_device in (int(b) for b in FLAGS.batch_sizes if b):
    warmup, rates[per_device], sequences = measure(
      per_device, steps, config, objects, parallel=FLAGS.parallel
    )
    print(f'{per_device:>12} {warmup:>10.1f} {rates[per_device]:>9.4f} {sequences:>12.4f}')
  if FLAGS.profile:
    timer = Timer(steps)
    peak = matmul_rate(timer)
    rate = rates[1] if 1 in rates else measure(1, steps, config, objects)[1]
    step = ('step (pmap, all stages)', 1.0 / rate, timer_step_flops(config, objects))
    # The stages trace outside the step, so they take its kernel-gradient mode here.
    with backbone.conv_weight_gradient(config.conv_weight_gradient):
      print_profile(profile_rows(config, objects, timer), peak, step)


if __name__ == '__main__':
  app.run(main)
