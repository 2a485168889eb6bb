"""The real training loop against the step alone: is training input-bound, and by how much?

  python benchmarks/train_loop.py [--sizes=small,real] [--steps=8] [--json=OUT]
      [--set=data.superpixels_in_step=True ...]

For each size, on synthetic MSRA10K-like stills written as files (300x400, as MSRA10K):

  step alone    seconds per step of the loop's own compiled step on one pipeline batch already
                on the devices (compilation not timed);
  pipeline      seconds per batch of the tf.data pipeline alone, at the config's parallelism;
  loop          seconds per step of `train_and_evaluate` itself over the second half of
                `--steps` (its own `steps_per_second` scalar): pipeline, placement, step and
                logging, in steady state;
  checkpoint    seconds of one save of the final train state (orbax, as the loop saves) and
                the same amortised per step over the config's `checkpoint_every_steps`; the
                loop reopens the pipeline after each save, which costs the first batch's wait.

Sizes: `real` is `configs/msra10k.py` (256x256 frames, T = 3, 300 SLIC segments, 128x128 crops);
`small` is `configs/demo.py` (64x64 frames, 16x16 crops), where the step is fast enough on a
CPU to expose the pipeline. The verdict says which of the step and the pipeline bounds the
loop, and the loop's excess over that bound.
"""

import json
import tempfile
import time
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import app, flags

from shls_jax.data import input_pipeline, step_inputs, stills, synthetic
from shls_jax.training import loop

# isort: split
# The benchmark beside this script (a script's folder is on sys.path): it loads config files.
import step_modes

FLAGS = flags.FLAGS
# device_check.py imports this module for `device_row`: these flags exist only when this file is
# the program.
if __name__ == '__main__':
  flags.DEFINE_list('sizes', ['small', 'real'], 'configs to time: small (demo), real (msra10k)')
  flags.DEFINE_integer('steps', 8, 'loop steps per size (the second half is timed)')
  flags.DEFINE_multi_string('set', [], 'KEY=VALUE config override, e.g. step.parallel=jit')
  flags.DEFINE_string('json', None, 'write the figures here as JSON')

STILL_SIZE = (300, 400)
REPO = Path(__file__).resolve().parents[1]
CONFIGS = {'small': 'demo.py', 'real': 'msra10k.py'}


def size_config(size: str, stills_root: Path, steps: int, overrides: list[str]):
  """The config of `size` on the stills under `stills_root` with `overrides`, without validation,
  checkpointing at the end and logging at the two ends of the timed half."""
  if size not in CONFIGS:
    raise app.UsageError(f'unknown size {size!r}: one of {", ".join(CONFIGS)}')
  config = step_modes.load_config(str(REPO / 'configs' / CONFIGS[size]), [])
  config.data.root = str(stills_root)
  config.data.split = ''
  config.data.layout = 'msra10k'
  config.data.num_parallel_calls = min(config.data.num_parallel_calls, 2)
  config.num_train_steps = steps
  config.log_every_steps = steps // 2
  config.checkpoint_every_steps = steps
  config.eval_every_steps = 0
  config.eval_at_start = False
  config.eval.davis_root = ''
  config.export_torch = ''
  return step_modes.apply_overrides(config, overrides)


def step_alone(config, batch: dict, steps: int) -> float:
  """Seconds per step of the loop's step on `batch`, placed on the devices once."""
  state = loop.initial_state(config)
  step, state, _, place = loop.step_function(config, state)
  placed = place(batch)
  state, metrics = step(state, placed)
  jax.block_until_ready(metrics)
  start = time.perf_counter()
  for _ in range(steps):
    state, metrics = step(state, placed)
  jax.block_until_ready(metrics)
  return (time.perf_counter() - start) / steps


def pipeline_alone(config, source, batches: int) -> tuple[float, dict]:
  """(seconds per batch of the pipeline after its first batch, that first batch)."""
  it = input_pipeline.create_split(
    source,
    batch_size_per_device=config.batch_size_per_device,
    local_devices=jax.local_device_count(),
    seed=0,
    config=config.data,
    num_parallel_calls=config.data.num_parallel_calls,
  )
  first = next(it)
  start = time.perf_counter()
  for _ in range(batches):
    next(it)
  elapsed = (time.perf_counter() - start) / batches
  it.close()
  return elapsed, first


def loop_steady(config, workdir: Path) -> tuple[float, float]:
  """(seconds per step of `train_and_evaluate` over its last logging interval, seconds of one
  checkpoint save of its final state)."""
  from tensorflow.compat.v1 import train as tf_train  # the loop's TensorBoard events

  final = loop.train_and_evaluate(config, workdir)
  manager = ocp.CheckpointManager(
    workdir / 'timed_save', options=ocp.CheckpointManagerOptions(create=True)
  )
  start = time.perf_counter()
  manager.save(int(final.step), args=ocp.args.StandardSave(final))
  manager.wait_until_finished()
  saved = time.perf_counter() - start
  manager.close()
  rates = {}
  for events in (workdir / loop.TENSORBOARD_DIR).glob('events.out.tfevents.*'):
    for event in tf_train.summary_iterator(str(events)):
      for value in event.summary.value:
        if value.tag == 'train/steps_per_second':
          rates[event.step] = float(np.frombuffer(value.tensor.tensor_content, np.float32)[0])
  return 1.0 / rates[max(rates)], saved


def figures(size: str, steps: int, overrides: list[str], root: Path) -> dict:
  """The three timings of one size and the verdict (see the module docstring)."""
  stills_root = root / 'stills'
  if not stills_root.exists():
    synthetic.write_stills(stills_root, num_images=32, size=STILL_SIZE, seed=0)
  config = size_config(size, stills_root, steps, overrides)
  every = step_modes.load_config(str(REPO / 'configs' / CONFIGS[size]), []).checkpoint_every_steps
  source = stills.StillImageSet(stills.list_msra10k(str(stills_root)))
  pipeline, batch = pipeline_alone(config, source, max(2, steps // 2))
  step = step_alone(config, batch, max(2, steps // 4))
  looped, checkpoint = loop_steady(config, root / f'workdir_{size}_{time.time_ns()}')
  bound = max(step, pipeline)
  return {
    'size': size,
    'frames': 'x'.join(map(str, config.data.image_size)),
    'superpixels_in_step': bool(step_inputs.settings(config.data)),
    'parallel': config.step.parallel,
    'step_s': step,
    'pipeline_s_per_batch': pipeline,
    'loop_s': looped,
    'bound': 'input' if pipeline > step else 'step',
    'loop_over_bound': looped / bound - 1.0,
    'loop_over_step': looped / step - 1.0,
    'checkpoint_s': checkpoint,
    'checkpoint_every_steps': every,
    'checkpoint_s_per_step': checkpoint / every,
  }


def _line(f: dict) -> str:
  return (
    f'{f["size"]:>5} {f["frames"]:>8} {f["step_s"]:>10.3f} {f["pipeline_s_per_batch"]:>12.3f} '
    f'{f["loop_s"]:>8.3f} {100 * f["loop_over_step"]:>+10.1f}% {f["checkpoint_s"]:>8.2f} '
    f'{f["checkpoint_s_per_step"]:>10.4f} {f["bound"]:>6}-bound, '
    f'loop {100 * f["loop_over_bound"]:+.1f}% over it'
  )


HEADER = (
  f'{"size":>5} {"frames":>8} {"step s":>10} {"pipeline s":>12} {"loop s":>8} {"loop/step":>11} '
  f'{"ckpt s":>8} {"ckpt s/step":>10} verdict'
)


def device_row(smoke: bool) -> str:
  """`device_check.py`'s row: the small size's line, or why it cannot run here."""
  try:
    import tensorflow  # noqa: F401  (the pipeline's tf.data)
  except ImportError:
    return 'n/a: TensorFlow is not installed (the pipeline is tf.data)'
  with tempfile.TemporaryDirectory() as root:
    return _line(figures('small', 4 if smoke else 8, [], Path(root)))


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  if FLAGS.steps < 4 or FLAGS.steps % 2:
    raise app.UsageError(f'--steps must be an even number >= 4, got {FLAGS.steps}')
  input_pipeline.hide_gpus_from_tensorflow()
  print(f'{jax.local_device_count()} x {jax.devices()[0].device_kind}; overrides: {FLAGS.set}')
  print(HEADER)
  results = []
  with tempfile.TemporaryDirectory() as root:
    for size in FLAGS.sizes:
      results.append(figures(size, FLAGS.steps, FLAGS.set, Path(root)))
      print(_line(results[-1]), flush=True)
  if FLAGS.json:
    Path(FLAGS.json).write_text(json.dumps(results, indent=1))


if __name__ == '__main__':
  app.run(main)
