"""Training variants side by side: same data, seed and step count, one table and one plot of
their learning curves.

Trains `configs/demo.py` (or `--config`) once per `--variant` from the same initial variables on
the same pseudo-sequences, validating every `--eval_every` steps on the config's videos. By
default the variants are the static pmap step (`step_mode='pmap'`: static crops, padded object
slots, on-device memory) and the reference step (`step_mode='reference'`: the reference's exact
batch-1 iteration with the host memory); `--variant=NAME:KEY=VALUE[;KEY=VALUE]` names others,
e.g. float32 against bfloat16 compute or host against in-step superpixels. Prints, per
validation step, each variant's J&F-Mean and the copy-first-mask baseline, then each variant's
wall seconds per step (compilation and validations included); writes `<workdir>/<--plot>.png`
(all curves, losses below) and each run's own workdir (`<workdir>/<NAME>`).

  python -m shls_jax.tools.synthetic --stills demo_out/stills --videos demo_out/videos \\
      --num_stills 200 --still_size 96,96 --num_videos 8 --frames 8 --objects 1 --video_size 96,96
  .venv/bin/python benchmarks/step_modes.py --workdir=/tmp/step_modes [--steps=100]
      [--eval_every=50] [--set=step.ema_decay=0]
  .venv/bin/python benchmarks/step_modes.py --workdir=/tmp/bf16 --plot=bf16 \\
      --variant='float32:step.dtype="float32"' --variant='bfloat16:step.dtype="bfloat16"'
"""

import ast
import importlib.util
import sys
import time
from pathlib import Path

from absl import app, flags

from shls_jax import checkpoints
from shls_jax.training import curves, loop

DEFAULT_VARIANTS = ('pmap:step_mode="pmap"', 'reference:step_mode="reference"')

FLAGS = flags.FLAGS
# train_loop.py imports this module for `load_config`: these flags exist only when this file is
# the program.
if __name__ == '__main__':
  flags.DEFINE_string('config', 'configs/demo.py', 'config file trained in both step modes')
  flags.DEFINE_string('workdir', None, 'a new or empty folder')
  flags.DEFINE_integer('steps', 100, 'training steps of each run')
  flags.DEFINE_integer('eval_every', 50, 'steps between validations')
  flags.DEFINE_multi_string('set', [], 'FIELD=VALUE: config override')
  flags.DEFINE_multi_string(
    'variant', list(DEFAULT_VARIANTS), 'NAME:KEY=VALUE[;KEY=VALUE]: one trained variant'
  )
  flags.DEFINE_string('plot', 'step_modes', 'name of the PNG of the curves in --workdir')
  flags.mark_flag_as_required('workdir')


# The config files import `configs.msra10k`, a folder of the repository, not of the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def load_config(path: str, overrides):
  """`get_config()` of a config file with KEY=VALUE overrides (`apply_overrides`)."""
  spec = importlib.util.spec_from_file_location('step_modes_config', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return apply_overrides(module.get_config(), overrides)


def apply_overrides(config, overrides):
  """`config` with each KEY=VALUE of `overrides` set (dotted keys, values as Python literals)."""
  for item in overrides:
    key, value = item.split('=', 1)
    *blocks, leaf = key.split('.')
    node = config
    for block in blocks:
      node = node[block]
    node[leaf] = ast.literal_eval(value)
  return config


def parse_variant(text: str) -> tuple[str, list[str]]:
  """(name, overrides) of 'NAME:KEY=VALUE[;KEY=VALUE]'."""
  name, _, overrides = text.partition(':')
  if not name or not overrides:
    raise app.UsageError(f'--variant takes NAME:KEY=VALUE[;KEY=VALUE], got {text!r}')
  return name, [item for item in overrides.split(';') if item]


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  workdir, steps = Path(FLAGS.workdir), FLAGS.steps
  if workdir.exists() and any(workdir.iterdir()):
    raise SystemExit(f'{workdir} is not empty: choose a new --workdir')
  variants = dict(parse_variant(v) for v in FLAGS.variant)
  checkpoints.quiet_orbax_logging()
  runs, seconds = {}, {}
  for name, overrides in variants.items():
    config = load_config(FLAGS.config, FLAGS.set + overrides)
    config.num_train_steps = steps
    config.eval_every_steps = FLAGS.eval_every
    config.eval_at_start = True
    start = time.perf_counter()
    loop.train_and_evaluate(config, workdir / name)
    seconds[name] = (time.perf_counter() - start) / steps
    runs[name] = curves.read_curve(workdir / name / curves.CURVE_CSV)
  plot = workdir / f'{FLAGS.plot}.png'
  curves.plot_curves(plot, runs, title=f'{Path(FLAGS.config).stem}: {" vs ".join(variants)}')
  by_step = {name: {r['step']: r for r in rows} for name, rows in runs.items()}
  first = next(iter(variants))
  print(
    '\n' + f'{"step":>6} ' + ' '.join(f'{n + " J&F":>14}' for n in variants) + ' copy first mask'
  )
  for step in sorted(by_step[first]):
    row = {name: by_step[name].get(step, {}) for name in variants}
    values = ' '.join(f'{row[n].get("J&F-Mean", float("nan")):>14.4f}' for n in variants)
    print(f'{step:>6} {values} {row[first].get("baseline J&F-Mean", float("nan")):>15.4f}')
  print('\n' + ', '.join(f'{name}: {seconds[name]:.2f} s/step' for name in variants))
  print(f'Curves: {plot}')


if __name__ == '__main__':
  app.run(main)
