"""One check of an accelerator: agreement with the CPU, inference and training throughput, bf16.

  python benchmarks/device_check.py --davis_root=DIR [--sequence=blackswan] [--out=table.md]
  python benchmarks/device_check.py --smoke          # any backend, toy sizes (tests/)

On a machine without network, `benchmarks/device_check_bundle.sh` prepares what travels (wheels
of faiss-cpu and ml_collections, one sequence) and says how to run it there.

Prints one table (and writes it as Markdown to --out):

* the device, jax version, default matmul precision, whether faiss is importable and whether
  its build runs the faiss memory on GPU indexes;
* accelerator against CPU (JAX's CPU backend of the same process), weights from JAX's own
  initialiser with a fixed key made on the CPU (identical bits on both backends): max relative
  error (max |a - b| / max |b|, b the CPU's at 'highest') of the embedding's superfeatures, the
  decoder's logits, one training step's loss and its gradients, at matmul precision 'highest'
  and at the default precision (TF32 on NVIDIA GPUs);
* bf16 (variables and inputs cast, so XLA computes in bf16) against float32 on the accelerator,
  the same quantities, and the share of decoder pixels whose argmax (the mask) changes;
* inference frames/s on one DAVIS sequence at its own resolution (480p for DAVIS), fast and
  exact modes, with the faiss memory (when faiss imports) and the on-device memory: the engine
  alone (superpixels precomputed), end to end (SLIC superpixels included), and the first run's
  extra seconds apart (compilation);
* fast mode's frame as one device step (`benchmarks/frame_budget.py`'s figures on a generated
  480x854 clip, JAX SLIC, one object): host ms the device waits for, device ms, copies and
  compilations per steady frame, GFLOP, and the frames/s each H200 limit allows;
* training steps/s and sequences/s of the pmapped step at 256x256, T = 3, for per-device batch
  1, 4 and 16 on synthetic batches (no tf.data), with the peak device memory; at batch 4 the
  jit step, bf16 compute and superpixels computed in the step beside it; and the real loop
  against the step alone (`benchmarks/train_loop.py`) where TensorFlow is installed.

`--smoke` runs every row at toy sizes (64x64 frames, a generated 4-frame video, batch 1) so that
the test suite proves the script runs; its numbers mean nothing.
"""

import contextlib
import datetime
import functools
import importlib.util
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from shls_jax import superpixels
from shls_jax.crops import object_crops
from shls_jax.data import davis, step_inputs
from shls_jax.data import defaults as data_defaults
from shls_jax.inference import defaults as inference_defaults
from shls_jax.inference.engine import Propagator
from shls_jax.model import shls
from shls_jax.training import defaults as step_defaults
from shls_jax.training import train_step as ts

# isort: split
# The benchmarks beside this script (a script's folder is on sys.path).
import frame_budget
import train_loop
import train_step as step_benchmark

from shls_jax.io import masks as mask_io

FLAGS = flags.FLAGS
flags.DEFINE_bool('smoke', False, 'tiny shapes on any backend')
flags.DEFINE_string('davis_root', None, 'DAVIS-layout folder with --sequence')
flags.DEFINE_string('sequence', 'blackswan', 'DAVIS sequence of the inference rows')
flags.DEFINE_integer('frames', 20, 'fast-mode frames')
flags.DEFINE_integer('exact_frames', 4, 'exact mode compiles per frame')
flags.DEFINE_integer('steps', 5, 'timed training steps per batch size')
flags.DEFINE_string('out', None, 'also write the table as Markdown here')

PRECISIONS = ('highest', 'default')


class Table:
  """Rows (section, item, value, note) printed as they come and kept for the Markdown file."""

  def __init__(self):
    self.rows = []

  def add(self, section: str, item: str, value, note: str = '') -> None:
    text = f'{value:.4g}' if isinstance(value, float) else str(value)
    self.rows.append((section, item, text, note))
    print(f'{section:<22} {item:<44} {text:>12}  {note}', flush=True)

  def markdown(self) -> str:
    lines = ['| section | item | value | note |', '|---|---|---|---|']
    lines += [f'| {" | ".join(row)} |' for row in self.rows]
    return '\n'.join(lines) + '\n'


def _relative_error(a, b) -> float:
  """max |a - b| / max |b| over every leaf of two pytrees (float64)."""
  num = max(
    float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))))
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))
  )
  den = max(float(np.max(np.abs(np.asarray(y, np.float64)))) for y in jax.tree.leaves(b))
  return num / max(den, 1e-30)


def _cast(tree, dtype):
  return jax.tree.map(
    lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree
  )


# Stage functions: (variables, inputs) -> outputs; jitted on the device their arguments are on.


def _embed_fn(num_segments):
  def run(variables, image, spx):
    out, _ = shls.embed(variables, image, spx, num_segments=num_segments)
    return out['superfeatures']

  return jax.jit(run)


@jax.jit
def _decode_fn(variables, inputs):
  return shls.decode_object(variables, inputs)[0]


def _step_fn(config):
  def run(variables, batch, rng):
    grads, _, metrics = ts.compute_gradients(
      variables['params'], variables['batch_stats'], batch, rng, config=config
    )
    return metrics['loss'], grads

  return jax.jit(run)


def _step_setting(smoke: bool):
  """(step config, `synthetic_batch` shape): the training benchmark's, or a toy one whose
  programs compile fastest (one object slot, XLA's kernel gradients)."""
  config = step_defaults.get_config()
  if not smoke:
    return config, {}
  config.crop_size = (32, 32)
  config.object_capacity = 1
  config.conv_weight_gradient = 'xla'
  return config, dict(size=64, capacity=64, grid=(8, 8), box=(16, 16))


def _stage_inputs(size: int, crop: int, rng: np.random.Generator, capacity: int):
  """(image [1, S, S, 3], spx [1, S, S], decoder ObjectInputs at crop x crop)."""
  image = rng.normal(size=(1, size, size, 3)).astype(np.float32)
  blocks = size // 16
  rows = np.arange(size) * blocks // size
  spx = (rows[:, None] * blocks + rows[None, :] + 1).astype(np.int32)[None]
  assert spx.max() <= capacity
  q = crop // 4
  inputs = object_crops.ObjectInputs(
    attention=rng.random((2, crop, crop, 4)).astype(np.float32),
    l1=rng.normal(size=(2, crop, crop, 67)).astype(np.float32),
    l4=rng.normal(size=(2, q, q, 259)).astype(np.float32),
    decoder_l1=rng.normal(size=(crop, crop, 69)).astype(np.float32),
    first_l4=rng.normal(size=(q, q, 259)).astype(np.float32),
    decoder_attention=rng.random((crop, crop, 4)).astype(np.float32),
  )
  return image, spx, inputs


def agreement(table: Table, accelerator, cpu, smoke: bool) -> None:
  """Accelerator vs CPU at both precisions, and bf16 vs float32 on the accelerator."""
  size, crop, capacity = (64, 32, 64) if smoke else (128, 64, 512)
  rng = np.random.default_rng(0)
  with jax.default_device(cpu):
    variables = shls.init_variables(jax.random.PRNGKey(0))
  image, spx, inputs = _stage_inputs(size, crop, rng, capacity)
  config, shape = _step_setting(smoke)
  config.crop_size = (crop, crop)
  shape['size'] = size
  objects = config.object_capacity
  batch = jax.tree.map(lambda x: x[0], step_benchmark.synthetic_batch(1, objects, **shape))
  key = jax.random.PRNGKey(1)
  stages = {
    'superfeatures (embedding)': (_embed_fn(capacity), (variables, image, spx)),
    f'decoder logits ({crop}x{crop} crop)': (_decode_fn, (variables, inputs)),
    'training step loss, gradients': (_step_fn(config), (variables, batch, key)),
  }
  put = lambda args, device: jax.device_put(args, device)
  # With no accelerator both sides are the CPU: one precision shows that, and saves compiles.
  precisions = PRECISIONS if accelerator.platform != 'cpu' else PRECISIONS[:1]
  for name, (fn, args) in stages.items():
    with jax.default_matmul_precision('highest'):
      reference = jax.device_get(fn(*put(args, cpu)))
    for precision in precisions:
      context = (
        jax.default_matmul_precision(precision)
        if precision != 'default'
        else contextlib.nullcontext()
      )
      with context:
        ours = jax.device_get(fn(*put(args, accelerator)))
      table.add('accelerator vs CPU', f'{name}, {precision}', _relative_error(ours, reference))
    variables, *rest = args
    # bf16 compute: parameters and float inputs cast (the step's gradients come out in bf16);
    # BatchNorm statistics stay float32. Against the last precision above.
    bf16_variables = dict(variables, params=_cast(variables['params'], jnp.bfloat16))
    bf16 = jax.device_get(fn(*put((bf16_variables, *_cast(rest, jnp.bfloat16)), accelerator)))
    table.add('bf16 vs float32', name, _relative_error(bf16, ours))
    if name.startswith('decoder'):
      flipped = np.mean(
        np.argmax(np.asarray(bf16, np.float32), -1) != np.argmax(np.asarray(ours, np.float32), -1)
      )
      table.add('bf16 vs float32', 'decoder pixels whose mask changes', float(flipped))


def _smoke_video(rng):
  """A generated 4-frame video at 64x96: frames [T, H, W, 3] uint8 and a first mask."""
  frames = np.full((4, 64, 96, 3), 90, np.uint8)
  first = np.zeros((64, 96), np.uint8)
  for t in range(4):
    frames[t, 16:40, 20 + 4 * t : 50 + 4 * t] = (220, 60, 40)
  first[16:40, 20:50] = 1
  return frames + rng.integers(0, 20, frames.shape, dtype=np.uint8), first


def _video(smoke: bool, davis_root: Path | None, sequence: str, num_frames: int):
  """(frames [T, H, W, 3], first mask, row label, SLIC segments) of the inference rows."""
  if smoke:
    frames, first = _smoke_video(np.random.default_rng(0))
    return frames, first, 'generated 64x96', 40
  video = davis.load_sequence(davis_root, sequence)
  frames = davis.load_frames(video)[:num_frames]
  first = davis.load_masks(video, [0], single_object=True)[0]
  first = np.where(first == mask_io.VOID, 0, first)
  return frames, first, f'{sequence} {frames.shape[1]}x{frames.shape[2]}', 1000


def inference(
  table: Table,
  smoke: bool,
  davis_root: Path | None,
  sequence: str,
  num_frames: int,
  exact_frames: int,
) -> None:
  """Frames/s of the engine per mode and memory, alone and with SLIC, compilation apart."""
  frames, first, label, segments = _video(smoke, davis_root, sequence, num_frames)
  start = time.perf_counter()
  spx = np.stack([superpixels.compute(f, 'slic', n_segments=segments) for f in frames])
  slic = (time.perf_counter() - start) / len(frames)
  table.add('inference', f'SLIC superpixels, {label}', 1 / slic, 'frames/s (host)')
  variables = shls.init_variables(jax.random.PRNGKey(0))
  memories = ['device'] + (['faiss'] if importlib.util.find_spec('faiss') else [])
  for mode in ('fast', 'exact'):
    count = len(frames) if mode == 'fast' else min(len(frames), exact_frames)
    for memory in memories:
      config = inference_defaults.get_config()
      config.mode, config.memory = mode, memory
      if smoke:
        config.superpixel_capacity = 64
      engine = Propagator(variables, config)
      start = time.perf_counter()
      engine.run(frames[:count], spx[:count], first)
      first_run = time.perf_counter() - start
      start = time.perf_counter()
      engine.run(frames[:count], spx[:count], first)
      seconds = (time.perf_counter() - start) / count
      note = f'{count} frames; faiss-cpu wheel' if memory == 'faiss' else f'{count} frames'
      table.add('inference', f'{mode}, {memory} memory, engine', 1 / seconds, 'frames/s, ' + note)
      table.add(
        'inference', f'{mode}, {memory} memory, end to end', 1 / (seconds + slic), 'frames/s'
      )
      table.add(
        'inference', f'{mode}, {memory} memory, first run extra', first_run - seconds * count, 's'
      )


def frame_step(table: Table, smoke: bool, frames: int) -> None:
  """`frame_budget`'s figures of fast mode's device step (JAX SLIC, device memory, one object)
  and the frames/s each H200 limit allows them, on a generated clip (480x854 unless smoke)."""
  size, segments = ((64, 96), 40) if smoke else ((480, 854), 1000)
  variables = shls.init_variables(jax.random.PRNGKey(0))
  figures = frame_budget.engine_figures(variables, size, max(frames // 2, 4), 1, segments)
  label = f'{size[0]}x{size[1]}, 1 object'
  table.add('frame step', f'host ms per frame, {label}', figures['host_ms_per_frame'], 'ms')
  table.add('frame step', f'device ms per frame, {label}', figures['device_ms_per_frame'], 'ms')
  table.add('frame step', 'copies per frame', figures['copies_per_frame'], 'host<->device')
  table.add('frame step', 'compilations after warm-up', figures['compiles_after_warmup'])
  table.add('frame step', 'GFLOP per frame', figures['flops_per_frame'] / 1e9, 'XLA cost')
  table.add('frame step', 'engine frames/s', figures['cpu_engine_fps'], 'steady, this device')
  for name, fps in frame_budget.h200_bounds(figures).items():
    table.add('frame step', f'H200 bound, {name}', fps, 'frames/s')


def _peak_memory(device) -> str:
  stats = device.memory_stats() if hasattr(device, 'memory_stats') else None
  if not stats or 'peak_bytes_in_use' not in stats:
    return 'n/a'
  return f'{stats["peak_bytes_in_use"] / 2**30:.2f} GiB'


def training(table: Table, accelerator, smoke: bool, steps: int) -> None:
  config, shape = _step_setting(smoke)
  batches = (1,) if smoke else (1, 4, 16)
  label = '64x64 (smoke)' if smoke else '256x256'
  for per_device in batches:
    warmup, rate, sequences = step_benchmark.measure(
      per_device, steps, config, config.object_capacity, **shape
    )
    note = f'sequences/s {sequences:.3g}, warm-up {warmup:.1f} s, peak {_peak_memory(accelerator)}'
    table.add('training', f'pmap step {label}, T=3, batch/device {per_device}', rate, note)
  # The step's other kinds at one batch size, beside the pmap row of the same size.
  per_device = batches[-1] if smoke else 4
  data = data_defaults.get_config()
  if smoke:
    data.slic_segments, data.superpixel_capacity = 40, shape['capacity']
  data.object_capacity, data.superpixels_in_step = config.object_capacity, True
  bf16 = config.copy_and_resolve_references()
  bf16.dtype = 'bfloat16'
  kinds = (
    ('jit step (Mesh, NamedSharding)', config, dict(parallel='jit')),
    ('pmap step, bfloat16 compute', bf16, {}),
    ('pmap step, superpixels in the step', config, dict(inputs=step_inputs.settings(data))),
  )
  for name, kind_config, options in kinds:
    warmup, rate, sequences = step_benchmark.measure(
      per_device, steps, kind_config, kind_config.object_capacity, **options, **shape
    )
    note = f'sequences/s {sequences:.3g}, warm-up {warmup:.1f} s, peak {_peak_memory(accelerator)}'
    table.add('training', f'{name} {label}, batch/device {per_device}', rate, note)
  table.add('training', 'loop against step alone', train_loop.device_row(smoke))


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  if not FLAGS.smoke and FLAGS.davis_root is None:
    raise app.UsageError('--davis_root is required (or --smoke)')
  davis_root = Path(FLAGS.davis_root) if FLAGS.davis_root else None
  steps = 1 if FLAGS.smoke else FLAGS.steps
  accelerator = jax.devices()[0]
  cpu = jax.devices('cpu')[0]
  table = Table()
  table.add('device', 'accelerator', f'{accelerator.device_kind} ({accelerator.platform})')
  table.add('device', 'date', datetime.date.today().isoformat())
  table.add('device', 'jax', jax.__version__)
  table.add(
    'device', 'default matmul precision', jax.config.jax_default_matmul_precision or 'default'
  )
  has_faiss = importlib.util.find_spec('faiss') is not None
  table.add('device', 'faiss importable', has_faiss)
  if has_faiss:
    from shls_jax.memory import faiss_index

    # A faiss GPU build makes the faiss memory's rows below run on GPU indexes.
    table.add('device', 'faiss memory on GPU indexes', faiss_index.use_gpu())
  if accelerator.platform == 'cpu':
    table.add('device', 'note', 'no accelerator: the comparisons below are CPU against CPU')
  sections = (
    functools.partial(agreement, table, accelerator, cpu, FLAGS.smoke),
    functools.partial(
      inference, table, FLAGS.smoke, davis_root, FLAGS.sequence, FLAGS.frames, FLAGS.exact_frames
    ),
    functools.partial(frame_step, table, FLAGS.smoke, FLAGS.frames),
    functools.partial(training, table, accelerator, FLAGS.smoke, steps),
  )
  for section in sections:
    start = time.perf_counter()
    section()
    print(f'  ({time.perf_counter() - start:.0f} s)', file=sys.stderr, flush=True)
  if FLAGS.out:
    out = Path(FLAGS.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table.markdown())


if __name__ == '__main__':
  app.run(main)
