"""The static pmap step against the reference step: same data, seed and step count, one table and
one plot of both learning curves.

Trains `configs/demo.py` (or `--config`) twice from the same initial variables on the same
pseudo-sequences, once with `step_mode='pmap'` (static crops, padded object slots, on-device
memory) and once with `step_mode='reference'` (the reference's exact batch-1 iteration with the
host memory), validating every `--eval_every` steps on the config's videos. Prints, per
validation step, both J&F-Mean values and the copy-first-mask baseline, then each mode's
wall seconds per step (compilation and validations included); writes `<workdir>/step_modes.png` (both curves,
losses below) and each run's own workdir (`<workdir>/pmap`, `<workdir>/reference`).

  python -m shls_jax.tools.synthetic --stills demo_out/stills --videos demo_out/videos \\
      --num_stills 200 --still_size 96,96 --num_videos 8 --frames 8 --objects 1 --video_size 96,96
  .venv/bin/python benchmarks/step_modes.py --workdir=/tmp/step_modes [--steps=100]
      [--eval_every=50] [--set=step.ema_decay=0]
"""

import ast
import importlib.util
import time
from pathlib import Path

from absl import app, flags

from shls_jax import checkpoints
from shls_jax.training import curves, loop

MODES = ('pmap', 'reference')

FLAGS = flags.FLAGS
flags.DEFINE_string('config', 'configs/demo.py', 'config file trained in both step modes')
flags.DEFINE_string('workdir', None, 'a new or empty folder')
flags.DEFINE_integer('steps', 100, 'training steps of each run')
flags.DEFINE_integer('eval_every', 50, 'steps between validations')
flags.DEFINE_multi_string('set', [], 'FIELD=VALUE: config override')
flags.mark_flag_as_required('workdir')


def load_config(path: str, overrides):
  spec = importlib.util.spec_from_file_location('step_modes_config', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  for item in overrides:
    key, value = item.split('=', 1)
    *blocks, leaf = key.split('.')
    node = config
    for block in blocks:
      node = node[block]
    node[leaf] = ast.literal_eval(value)
  return config


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  workdir, steps = Path(FLAGS.workdir), FLAGS.steps
  if workdir.exists() and any(workdir.iterdir()):
    raise SystemExit(f'{workdir} is not empty: choose a new --workdir')
  checkpoints.quiet_orbax_logging()
  runs, seconds = {}, {}
  for mode in MODES:
    config = load_config(FLAGS.config, FLAGS.set)
    config.step_mode = mode
    config.num_train_steps = steps
    config.eval_every_steps = FLAGS.eval_every
    config.eval_at_start = True
    start = time.perf_counter()
    loop.train_and_evaluate(config, workdir / mode)
    seconds[mode] = (time.perf_counter() - start) / steps
    runs[mode] = curves.read_curve(workdir / mode / curves.CURVE_CSV)
  plot = workdir / 'step_modes.png'
  curves.plot_curves(plot, runs, title=f'{Path(FLAGS.config).stem}: pmap vs reference step')
  by_step = {mode: {r['step']: r for r in rows} for mode, rows in runs.items()}
  print(f'\n{"step":>6} {"pmap J&F":>9} {"reference J&F":>14} {"copy first mask":>16}')
  for step in sorted(by_step['pmap']):
    row = {mode: by_step[mode].get(step, {}) for mode in MODES}
    values = [row[mode].get('J&F-Mean', float('nan')) for mode in MODES]
    baseline = row['pmap'].get('baseline J&F-Mean', float('nan'))
    print(f'{step:>6} {values[0]:>9.4f} {values[1]:>14.4f} {baseline:>16.4f}')
  print('\n' + ', '.join(f'{mode}: {seconds[mode]:.2f} s/step' for mode in MODES))
  print(f'Curves: {plot}')


if __name__ == '__main__':
  app.run(main)
