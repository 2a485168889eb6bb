"""The evaluation report: one self-contained HTML page of a scored DAVIS results folder.

`write_report(...)` scores the folder (`scoring.score_all`), the copy-first-mask baseline of the
same frames (or the baseline folder `evaluate --baseline` wrote) and, optionally, a second results
folder (`compare`: another method, an earlier run),
and writes `<results_dir>/report.html` holding

* the global table of each, side by side;
* per sequence (one row per object) J&F-Mean bars of each;
* per sequence, per-frame J curves of each object;
* per sequence, its worst frames (lowest J of the results, averaged over objects, spread over
  the sequence) as thumbnails: the frame with the annotation, the results and the compared
  results overlaid.

Plots are inline SVG and thumbnails embedded JPEGs: the file opens anywhere, alone. The baseline
is scored in memory from the annotations (no file is written for it).
"""

import base64
import dataclasses
import html
import os
from pathlib import Path

import cv2
import numpy as np

from shls_jax.data import davis
from shls_jax.evaluation import scoring
from shls_jax.io import frames as frame_io
from shls_jax.io import masks as mask_io

REPORT_FILE = 'report.html'
BASELINE_NAME = 'copy first mask'
# Results, baseline, compared results: colour-blind-safe hues, baseline in grey.
_COLOURS = ('#0072b2', '#999999', '#d55e00')
_THUMB_WIDTH = 240


@dataclasses.dataclass(frozen=True)
class Run:
  """One scored method: a label and its `scoring.SequenceScores`, in the report's order."""

  label: str
  scores: list[scoring.SequenceScores]

  @property
  def table(self) -> dict[str, float]:
    return scoring.tables(self.scores)[0]


def copy_first_mask_scores(
  davis_root, sequences, single_object: bool, resolution: str = '480p'
) -> list[scoring.SequenceScores]:
  """Per-frame scores of copying each sequence's first mask to every frame."""
  scores = []
  for name in sequences:
    sequence = davis.load_sequence(davis_root, name, resolution)
    first = davis.first_mask(sequence, single_object)
    object_ids = (1,) if single_object else sequence.object_ids
    scored = scoring.scored_frames(sequence)
    per_frame = [
      scoring.score_prediction(
        mask_io.read_indexed_png(sequence.annotations[i]),
        first,
        object_ids,
        sequence.binary_255,
        single_object,
      )
      for i in scored
    ]
    stack = np.stack(per_frame, axis=-1)
    names = tuple(sequence.frames[i].stem for i in scored)
    scores.append(scoring.SequenceScores(name, object_ids, names, stack[0], stack[1]))
  return scores


def write_report(
  davis_root,
  results_dir,
  sequences,
  *,
  single_object: bool = False,
  resolution: str = '480p',
  compare=None,
  baseline_dir=None,
  worst: int = 3,
  workers: int = 1,
  overwrite: bool = False,
) -> Path:
  """Writes `<results_dir>/report.html` (see the module docstring); returns its path.

  Args:
    davis_root: DAVIS root (JPEGImages/, Annotations/).
    results_dir: scored results folder (`<sequence>/<frame>.png`).
    sequences: sequence names.
    single_object: DAVIS-2016 protocol (all objects merged).
    resolution: '480p' or 'Full-Resolution'.
    compare: optional second results folder of the same sequences.
    baseline_dir: the baseline's results folder (`evaluate --baseline` writes it: the copy of
      the first masks the results started from); None scores copying the annotated first mask.
    worst: thumbnails per sequence.
    workers: scoring threads.
    overwrite: replace a report already there.

  Raises:
    FileExistsError: a report is there and `overwrite` is False.
    FileNotFoundError, ValueError: as `scoring.score_all` for either results folder.
  """
  results_dir = Path(results_dir)
  path = results_dir / REPORT_FILE
  if path.exists() and not overwrite:
    raise FileExistsError(f'{path} already exists: pass --overwrite to replace it')
  sequences = list(sequences)

  def scored(folder):
    return scoring.score_all(davis_root, folder, sequences, single_object, workers, resolution)

  if baseline_dir is None:
    baseline = copy_first_mask_scores(davis_root, sequences, single_object, resolution)
  else:
    baseline = scored(baseline_dir)
  runs = [Run(_label(results_dir), scored(results_dir)), Run(BASELINE_NAME, baseline)]
  folders = [results_dir, None]
  if compare is not None:
    compare = Path(compare)
    label = _label(compare)
    if label == runs[0].label:
      label = f'{label} (compared)'
    runs.append(Run(label, scored(compare)))
    folders.append(compare)
  page = _page(davis_root, resolution, single_object, runs, folders, worst)
  # Written whole under a temporary name: a reader never sees half a report.
  partial = path.with_name(f'.{path.name}.partial')
  partial.write_text(page, encoding='utf-8')
  os.replace(partial, path)
  return path


def _label(folder: Path) -> str:
  return folder.resolve().name or str(folder)


# ----------------------------------------------------------------------------------------- page


def _page(davis_root, resolution, single_object, runs, folders, worst) -> str:
  protocol = 'DAVIS-2016 (objects merged)' if single_object else 'DAVIS-2017 (every object)'
  sections = [
    '<h1>SHLS evaluation report</h1>',
    f'<p>{len(runs[0].scores)} sequences, protocol {protocol}; first and last frames are not '
    'scored.</p>',
    _legend(runs),
    '<h2>Global results</h2>',
    _global_table(runs),
    '<h2>J&amp;F-Mean per sequence</h2>',
    _bars(runs),
  ]
  for k, seq in enumerate(runs[0].scores):
    sections.append(f'<h2 id="{html.escape(seq.name)}">{html.escape(seq.name)}</h2>')
    sections.append(_curves([r.scores[k] for r in runs], [r.label for r in runs]))
    sections.append(_worst_frames(davis_root, resolution, single_object, runs, folders, k, worst))
  body = '\n'.join(sections)
  return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>SHLS evaluation report</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; color: #222; max-width: 1100px; }}
table {{ border-collapse: collapse; }}
td, th {{ border: 1px solid #ccc; padding: 3px 8px; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
.swatch {{ display: inline-block; width: 12px; height: 12px; margin: 0 4px 0 12px; }}
figure {{ display: inline-block; margin: 4px; font-size: 12px; }}
</style></head><body>
{body}
</body></html>
"""


def _legend(runs) -> str:
  items = ''.join(
    f'<span class="swatch" style="background:{_COLOURS[i]}"></span>{html.escape(r.label)}'
    for i, r in enumerate(runs)
  )
  return f'<p>{items}</p>'


def _global_table(runs) -> str:
  head = ''.join(f'<th>{html.escape(c)}</th>' for c in ('', *scoring.GLOBAL_COLUMNS))
  rows = []
  for run in runs:
    table = run.table
    cells = ''.join(f'<td>{table[c]:.3f}</td>' for c in scoring.GLOBAL_COLUMNS)
    rows.append(f'<tr><td>{html.escape(run.label)}</td>{cells}</tr>')
  return f'<table><tr>{head}</tr>{"".join(rows)}</table>'


def _object_jf(seq: scoring.SequenceScores) -> list[tuple[str, float]]:
  """('<sequence>_<id>', J&F-Mean) of each object of a sequence."""
  return [
    (f'{seq.name}_{obj}', float((np.nanmean(seq.j[k]) + np.nanmean(seq.f[k])) / 2))
    for k, obj in enumerate(seq.object_ids)
  ]


def _bars(runs) -> str:
  """Horizontal grouped bars: one group per object, one bar per run, J&F-Mean in [0, 1]."""
  rows = [list(zip(*[_object_jf(s) for s in seqs])) for seqs in zip(*[r.scores for r in runs])]
  rows = [row for seq_rows in rows for row in seq_rows]
  bar, gap, left, width = 9, 8, 150, 520
  group = bar * len(runs) + gap
  height = group * len(rows) + 30
  parts = [_axis_x(left, width, height - 24)]
  for i, per_run in enumerate(rows):
    y = i * group + 4
    name = per_run[0][0]
    parts.append(
      f'<text x="{left - 6}" y="{y + bar * len(runs) / 2 + 4}" text-anchor="end" '
      f'font-size="11">{html.escape(name)}</text>'
    )
    for r, (_, value) in enumerate(per_run):
      parts.append(
        f'<rect x="{left}" y="{y + r * bar}" width="{value * width:.1f}" height="{bar - 1}" '
        f'fill="{_COLOURS[r]}"><title>{html.escape(runs[r].label)}: {value:.3f}</title></rect>'
      )
  return _svg(left + width + 30, height, parts)


def _axis_x(left: float, width: float, y: float) -> str:
  ticks = []
  for value in np.linspace(0, 1, 6):
    x = left + value * width
    ticks.append(
      f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{y}" stroke="#eee"/>'
      f'<text x="{x:.1f}" y="{y + 14}" text-anchor="middle" font-size="10">{value:.1f}</text>'
    )
  return ''.join(ticks)


def _curves(seqs: list[scoring.SequenceScores], labels: list[str]) -> str:
  """Per object, J per scored frame of each run (x: frame index, y: J in [0, 1])."""
  plots = []
  left, top, width, height = 40, 20, 480, 140
  for k, obj in enumerate(seqs[0].object_ids):
    frames = len(seqs[0].frame_names)
    parts = [f'<text x="{left}" y="13" font-size="12">object {obj}: J per frame</text>']
    for value in (0, 0.5, 1):
      y = top + (1 - value) * height
      parts.append(
        f'<line x1="{left}" y1="{y}" x2="{left + width}" y2="{y}" stroke="#eee"/>'
        f'<text x="{left - 4}" y="{y + 4}" text-anchor="end" font-size="10">{value}</text>'
      )
    step = width / max(frames - 1, 1)
    for r, seq in enumerate(seqs):
      points = ' '.join(
        f'{left + t * step:.1f},{top + (1 - v) * height:.1f}' for t, v in enumerate(seq.j[k])
      )
      parts.append(
        f'<polyline points="{points}" fill="none" stroke="{_COLOURS[r]}" stroke-width="1.5">'
        f'<title>{html.escape(labels[r])}</title></polyline>'
      )
    parts.append(
      f'<text x="{left}" y="{top + height + 14}" font-size="10">{seqs[0].frame_names[0]}</text>'
      f'<text x="{left + width}" y="{top + height + 14}" text-anchor="end" font-size="10">'
      f'{seqs[0].frame_names[-1]}</text>'
    )
    plots.append(_svg(left + width + 10, top + height + 20, parts))
  return ''.join(plots)


def _svg(width: float, height: float, parts: list[str]) -> str:
  return (
    f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}">'
    f'{"".join(parts)}</svg>'
  )


def _worst_frames(davis_root, resolution, single_object, runs, folders, k, worst) -> str:
  seq = runs[0].scores[k]
  order = _worst(np.nanmean(seq.j, axis=0), worst)
  sequence = davis.load_sequence(davis_root, seq.name, resolution)
  figures = []
  for t in sorted(order):
    name = seq.frame_names[t]
    index = sequence.frame_names.index(name)
    frame = frame_io.read_frame(sequence.frames[index])
    panels = [(frame, davis.load_masks(sequence, [index], single_object=single_object)[0])]
    panels += [
      (frame, mask_io.read_indexed_png(Path(folder) / seq.name / f'{name}.png'))
      for folder in folders
      if folder is not None
    ]
    labels = ['annotation'] + [r.label for r, f in zip(runs, folders) if f is not None]
    scores = [''] + [
      f' J {np.nanmean(r.scores[k].j[:, t]):.2f}' for r, f in zip(runs, folders) if f is not None
    ]
    cells = ''.join(
      f'<figure><img src="{_thumbnail(image, mask)}" width="{_THUMB_WIDTH}">'
      f'<figcaption>{html.escape(label)}{score}</figcaption></figure>'
      for (image, mask), label, score in zip(panels, labels, scores)
    )
    figures.append(f'<div><b>frame {html.escape(name)}</b><br>{cells}</div>')
  return f'<h3>Worst frames of {html.escape(runs[0].label)}</h3>' + ''.join(figures)


def _worst(values: np.ndarray, count: int) -> list[int]:
  """Indices of the `count` lowest values, each at least len / (2 count) from the others picked
  (a failure lasting several frames shows once)."""
  gap = max(1, len(values) // (2 * count))
  picked = []
  for t in np.argsort(values, kind='stable'):
    if all(abs(t - p) >= gap for p in picked):
      picked.append(int(t))
    if len(picked) == count:
      break
  return picked


def _thumbnail(frame: np.ndarray, mask: np.ndarray) -> str:
  """A data URI of the frame with the mask overlaid (void shown as background), JPEG."""
  mask = np.where(mask == mask_io.VOID, 0, mask).astype(np.uint8)
  image = mask_io.overlay(frame, mask)
  height = round(image.shape[0] * _THUMB_WIDTH / image.shape[1])
  image = cv2.resize(image, (_THUMB_WIDTH, height), interpolation=cv2.INTER_AREA)
  ok, data = cv2.imencode(
    '.jpg', cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 80]
  )
  if not ok:
    raise ValueError('cannot encode a thumbnail')
  return 'data:image/jpeg;base64,' + base64.b64encode(data.tobytes()).decode('ascii')
