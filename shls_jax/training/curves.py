"""The learning curve of a training run: validation J&F of the model beside the copy-first-mask
baseline on the same sequences, and the training losses, as a CSV and a PNG in the workdir.

The CSV is the record: one row per validation (`step`, the model's global scores, the baseline's
J&F-Mean, the mean training losses since the previous validation); a resumed run reads it back and
appends. The PNG is redrawn from it after every validation.
"""

import csv
import os
from pathlib import Path
from typing import Dict, List

CURVE_CSV = 'learning_curve.csv'
CURVE_PNG = 'learning_curve.png'
LOSS_COLUMNS = ('loss', 'ntxent', 'ce')
_MODEL = 'J&F-Mean'
_BASELINE = 'baseline J&F-Mean'


def read_curve(path: os.PathLike) -> List[Dict[str, float]]:
  """Rows of a curve CSV (floats; 'step' an int), [] when the file does not exist."""
  path = Path(path)
  if not path.is_file():
    return []
  with path.open(newline='') as f:
    rows = [{k: float(v) for k, v in row.items() if v != ''} for row in csv.DictReader(f)]
  for row in rows:
    row['step'] = int(row['step'])
  return rows


def write_curve(path: os.PathLike, rows: List[Dict[str, float]]) -> None:
  """Writes rows sorted by step (one per step, the last given wins) atomically."""
  by_step = {int(row['step']): row for row in rows}
  columns = ['step'] + sorted({k for row in by_step.values() for k in row} - {'step'})
  path = Path(path)
  tmp = path.with_suffix('.csv.tmp')
  with tmp.open('w', newline='') as f:
    writer = csv.DictWriter(f, columns)
    writer.writeheader()
    for step in sorted(by_step):
      writer.writerow(by_step[step])
  os.replace(tmp, path)


def plot_curve(path: os.PathLike, rows: List[Dict[str, float]], title: str = '') -> None:
  """Draws validation J&F (model and baseline) against steps, with the losses below, to a PNG."""
  plot_curves(path, {'model': rows}, title)


def plot_curves(
  path: os.PathLike, runs: Dict[str, List[Dict[str, float]]], title: str = ''
) -> None:
  """As `plot_curve` for several runs on the same validation sequences (name -> rows): one
  J&F line and one line per loss for each run, the baseline of the first run once."""
  # Imported here: a plotting backend is loaded only when a curve is drawn.
  import matplotlib

  matplotlib.use('Agg')
  from matplotlib import pyplot as plt

  fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
  plotted = False
  for index, (run, rows) in enumerate(runs.items()):
    rows = sorted(rows, key=lambda r: r['step'])
    steps = [r['step'] for r in rows]
    top.plot(steps, [r.get(_MODEL, float('nan')) for r in rows], 'o-', label=run)
    if index == 0:
      baseline = [r.get(_BASELINE, float('nan')) for r in rows]
      top.plot(steps, baseline, 's--', color='grey', label='copy first mask')
    prefix = f'{run} ' if len(runs) > 1 else ''
    for name in LOSS_COLUMNS:
      points = [(r['step'], r[name]) for r in rows if name in r]
      if points:
        bottom.plot(*zip(*points), '.-', label=prefix + name)
        plotted = True
  top.set_ylabel('validation J&F-Mean')
  top.set_ylim(0, 1)
  top.grid(alpha=0.3)
  top.legend()
  if title:
    top.set_title(title)
  bottom.set_xlabel('step')
  bottom.set_ylabel('mean training loss since the last validation')
  bottom.grid(alpha=0.3)
  if plotted:
    bottom.legend(fontsize='small')
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
