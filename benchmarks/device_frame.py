"""What running fast mode's frames as one device step costs in accuracy, with trained weights.

  python benchmarks/device_frame.py --checkpoint=workdir/stills_cpu/checkpoints \
      [--config=configs/stills_cpu.py] [--davis_root=../shared/data/davis2016-sample] \
      [--sequences=blackswan,bmx-trees,car-shadow,dog,libby] [--out=device_frame_results]

Three runs of `shls-evaluate` (fast mode, device memory, the config's size and protocol), on
the same frames and weights:

  host:   scikit-image SLIC, the frame rules on the host (`config.inference.frame_step=False`),
          the path before the device step;
  rules:  scikit-image SLIC on the host, the frame rules traced in the device step;
  device: the JAX SLIC and the frame rules, all in the device step (the default).

Per sequence: J&F-Mean of each run and of copy-first-mask, and the mean and lowest per-frame mask
IoU of `rules` and `device` against `host` (frames 1..T-1; 1.0 where both are empty), which
separates what the traced rules change from what the superpixels change.
"""

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
from absl import app, flags

from shls_jax.io import masks as mask_io
from shls_jax.tools import cli

_SAMPLE = Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'davis2016-sample'

FLAGS = flags.FLAGS
flags.DEFINE_string('checkpoint', None, 'orbax folder or reference .pth')
flags.DEFINE_string('config', 'configs/stills_cpu.py', 'evaluation config file')
flags.DEFINE_string('davis_root', str(_SAMPLE), 'DAVIS-layout folder')
flags.DEFINE_list(
  'sequences', ['blackswan', 'bmx-trees', 'car-shadow', 'dog', 'libby'], 'sequences to run'
)
flags.DEFINE_string('out', 'device_frame_results', 'folder of the three results folders')
flags.mark_flag_as_required('checkpoint')

RUNS = {
  'host': ['--config.inference.frame_step=False', '--config.eval.superpixels.method=slic'],
  'rules': ['--config.inference.frame_step=True', '--config.eval.superpixels.method=slic'],
  'device': ['--config.inference.frame_step=True', '--config.eval.superpixels.method=slic-jax'],
}


def evaluate(name: str, extra: list[str], baseline: bool) -> Path:
  results = Path(FLAGS.out) / name
  command = [
    sys.executable,
    '-m',
    'shls_jax.tools.evaluate',
    f'--config={FLAGS.config}:{FLAGS.davis_root}',
    f'--davis_root={FLAGS.davis_root}',
    f'--checkpoint={FLAGS.checkpoint}',
    f'--results_dir={results}',
    f'--sequences={",".join(FLAGS.sequences)}',
    '--config.inference.mode=fast',
    '--config.inference.memory=device',
    '--overwrite',
    *(['--baseline'] if baseline else []),
    *extra,
  ]
  done = subprocess.run(command, capture_output=True, text=True, check=False)
  if done.returncode:
    raise RuntimeError(f'evaluation {name} failed: {done.stderr.strip()[-2000:]}')
  return results


def per_sequence(results: Path) -> dict[str, float]:
  """{sequence: J&F-Mean} from a results folder's per-sequence CSV (objects averaged)."""
  (table,) = results.glob('per-sequence_results-*.csv')
  scores: dict[str, list[float]] = {}
  with open(table) as f:
    for row in csv.DictReader(f):
      sequence = row['Sequence'].rsplit('_', 1)[0]
      scores.setdefault(sequence, []).append((float(row['J-Mean']) + float(row['F-Mean'])) / 2)
  return {name: float(np.mean(values)) for name, values in scores.items()}


def frame_ious(a: Path, b: Path, sequence: str) -> np.ndarray:
  """Per-frame IoU of the object pixels of two results folders' masks, frames 1..T-1."""
  ious = []
  for path in sorted((a / sequence).glob('*.png'))[1:]:
    x, y = mask_io.read_mask(path) > 0, mask_io.read_mask(b / sequence / path.name) > 0
    union = np.count_nonzero(x | y)
    ious.append(np.count_nonzero(x & y) / union if union else 1.0)
  return np.asarray(ious)


def main(argv) -> None:
  cli.check_no_arguments(argv)
  folders = {name: evaluate(name, extra, name == 'host') for name, extra in RUNS.items()}
  scores = {name: per_sequence(folder) for name, folder in folders.items()}
  scores['copy'] = per_sequence(folders['host'] / 'baseline')
  print(f'\nfast mode, device memory, {FLAGS.config}, checkpoint {FLAGS.checkpoint}')
  print(
    '| sequence | J&F host | J&F rules | J&F device | J&F copy first mask '
    '| IoU rules~host mean / min | IoU device~host mean / min |'
  )
  print('|---|---|---|---|---|---|---|')
  rows = []
  for sequence in FLAGS.sequences:
    rules = frame_ious(folders['host'], folders['rules'], sequence)
    device = frame_ious(folders['host'], folders['device'], sequence)
    row = [scores[name][sequence] for name in ('host', 'rules', 'device', 'copy')]
    row += [rules.mean(), rules.min(), device.mean(), device.min()]
    rows.append(row)
    print(
      f'| {sequence} | {row[0]:.3f} | {row[1]:.3f} | {row[2]:.3f} | {row[3]:.3f} '
      f'| {row[4]:.3f} / {row[5]:.3f} | {row[6]:.3f} / {row[7]:.3f} |'
    )
  mean = np.mean(rows, axis=0)
  low = np.min(rows, axis=0)
  print(
    f'| mean | {mean[0]:.3f} | {mean[1]:.3f} | {mean[2]:.3f} | {mean[3]:.3f} '
    f'| {mean[4]:.3f} / {low[5]:.3f} | {mean[6]:.3f} / {low[7]:.3f} |'
  )


if __name__ == '__main__':
  app.run(main)
