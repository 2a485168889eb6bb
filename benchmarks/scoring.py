"""Wall time of scoring a DAVIS results folder: `evaluate.py --score_only` against the official tool.

  python benchmarks/scoring.py [--davis_root=DIR] [--results=DIR] [--repeats=N] \
      [--official=PATH/TO/davis2017-evaluation --official_python=PYTHON]

Both run as whole commands (interpreter start and imports included), each on its own copy of the
results folder without CSVs (the official tool reuses CSVs it finds), best of N. The table gives
wall seconds, scored frames per second, J&F-Mean and the ratio to the official wall time; the
official numbers must equal ours to the printed precision. Defaults: the five-sequence DAVIS-2016
sample in ../shared and its OSVOS masks, scored as single objects (the sample's protocol).
"""

import csv
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from absl import app, flags

from shls_jax.data import davis

REPO = Path(__file__).resolve().parents[1]
_SAMPLE = REPO.parent / 'shared' / 'data' / 'davis2016-sample'

FLAGS = flags.FLAGS
flags.DEFINE_string('davis_root', str(_SAMPLE), 'DAVIS-layout folder')
flags.DEFINE_string('results', None, 'default: <davis_root>/results/osvos-binarized')
flags.DEFINE_integer('repeats', 3, 'best of N runs per tool')
flags.DEFINE_string('official', None, 'davis2017-evaluation checkout')
flags.DEFINE_string('official_python', sys.executable, 'interpreter with its requirements')


def _fresh_copy(results: Path, into: Path) -> Path:
  copy = into / 'results'
  shutil.rmtree(copy, ignore_errors=True)
  shutil.copytree(results, copy, ignore=shutil.ignore_patterns('*.csv'))
  return copy


def _timed(command: list[str], cwd: Path) -> float:
  start = time.perf_counter()
  done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
  seconds = time.perf_counter() - start
  if done.returncode != 0:
    raise SystemExit(f'{" ".join(command)} failed:\n{done.stderr[-2000:]}')
  return seconds


def _global_csv(folder: Path) -> dict[str, str]:
  with open(folder / 'global_results-val.csv', newline='') as f:
    header, values = list(csv.reader(f))[:2]
  return dict(zip(header, values))


def _run(name, command_for, results, repeats, cwd) -> tuple[str, float, dict]:
  best, table = float('inf'), {}
  with tempfile.TemporaryDirectory() as tmp:
    for _ in range(repeats):
      copy = _fresh_copy(results, Path(tmp))
      best = min(best, _timed(command_for(copy), cwd))
      table = _global_csv(copy)
  return name, best, table


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  davis_root, repeats = Path(FLAGS.davis_root), FLAGS.repeats
  if not davis_root.is_dir():
    raise SystemExit(f'DAVIS root {davis_root} does not exist: pass --davis_root')
  results = Path(FLAGS.results) if FLAGS.results else davis_root / 'results' / 'osvos-binarized'
  sequences = davis.list_sequences(davis_root, 'val')
  # Scored frames: every annotated frame but the first and the last.
  frames = sum(len(davis.frame_paths(davis_root, s)) - 2 for s in sequences)

  runs = []
  if FLAGS.official is not None:
    official = Path(FLAGS.official).resolve()
    script = official / 'evaluation_method.py'
    if not script.is_file():
      raise SystemExit(f'{script} does not exist: --official is the davis2017-evaluation folder')
    runs.append(
      _run(
        'official davis2017-evaluation',
        lambda copy: [
          FLAGS.official_python,
          str(script),
          '--task',
          'semi-supervised',
          '--davis_path',
          str(davis_root),
          '--results_path',
          str(copy),
        ],
        results,
        repeats,
        official,
      )
    )
  runs.append(
    _run(
      'evaluate.py --score_only',
      lambda copy: [
        sys.executable,
        str(REPO / 'evaluate.py'),
        '--score_only',
        '--single_object',
        '--davis_root',
        str(davis_root),
        '--results_dir',
        str(copy),
      ],
      results,
      repeats,
      REPO,
    )
  )

  reference = runs[0][1]
  print(f'{len(sequences)} sequences, {frames} scored frames, best of {repeats} runs each')
  print(f'{"tool":<30} {"wall s":>7} {"frames/s":>9} {"J&F-Mean":>9} {"speed-up":>9}')
  for name, seconds, table in runs:
    speed_up = reference / seconds
    print(
      f'{name:<30} {seconds:>7.2f} {frames / seconds:>9.0f} {table["J&F-Mean"]:>9} '
      f'{speed_up:>8.1f}x'
    )
  if len(runs) == 2 and runs[0][2] != runs[1][2]:
    raise SystemExit(f'the global numbers differ: {runs[0][2]} vs {runs[1][2]}')


if __name__ == '__main__':
  app.run(main)
