"""DAVIS semi-supervised scoring of a results folder: per object J and F, Mean / Recall / Decay.

Conventions (those of the DAVIS benchmark):

* Objects are the ids 1..K of a sequence's first-frame annotation; `single_object` merges every
  object of the ground truth and of the predictions into one (how DAVIS-2016 is scored).
* The first frame (given) and the last frame are not scored; every other annotated frame is.
* Void pixels (255) of the ground truth count as background: semi-supervised scoring uses no void
  mask. An object absent from a predicted frame is an empty prediction for it.
* Per object: Mean = mean over frames, Recall = fraction of frames scoring > 0.5, Decay = mean of
  the first quarter of frames minus mean of the last quarter (4 bins with shared edges).
* Global numbers average the per-object statistics over all objects of all sequences;
  J&F-Mean = (J-Mean + F-Mean) / 2.
"""

import concurrent.futures
import csv
import dataclasses
import os
from pathlib import Path

import numpy as np

from shls_jax.data import davis
from shls_jax.evaluation import metrics
from shls_jax.io import masks as mask_io

GLOBAL_COLUMNS = ('J&F-Mean', 'J-Mean', 'J-Recall', 'J-Decay', 'F-Mean', 'F-Recall', 'F-Decay')
SEQUENCE_COLUMNS = ('Sequence', 'J-Mean', 'F-Mean')
_NUM_DECAY_BINS = 4


@dataclasses.dataclass(frozen=True)
class SequenceScores:
  """Per-frame scores of one sequence.

  Attributes:
    name: sequence name.
    object_ids: the K scored object ids.
    frame_names: the T scored frames (all annotated frames but the first and the last).
    j: float64 [K, T] region similarity.
    f: float64 [K, T] boundary F-measure.
  """

  name: str
  object_ids: tuple[int, ...]
  frame_names: tuple[str, ...]
  j: np.ndarray
  f: np.ndarray


def statistics(values: np.ndarray) -> tuple[float, float, float]:
  """(Mean, Recall, Decay) of one object's per-frame scores, float [T] with T >= 1."""
  values = np.asarray(values, np.float64)
  mean = float(np.nanmean(values))
  recall = float(np.mean(values > 0.5))
  # Bin edges at 1-based positions linspace(1, T, 5), consecutive bins sharing their edge frame.
  edges = (np.round(np.linspace(1, len(values), _NUM_DECAY_BINS + 1) + 1e-10) - 1).astype(int)
  first = values[edges[0] : edges[1] + 1]
  last = values[edges[-2] : edges[-1] + 1]
  decay = float(np.nanmean(first) - np.nanmean(last))
  return mean, recall, decay


@dataclasses.dataclass(frozen=True)
class _Frame:
  """One scored frame: where its annotation and result are, and how to read them."""

  sequence: str
  annotation: Path
  result: Path
  object_ids: tuple[int, ...]
  binary_255: bool
  single_object: bool


def scored_frames(sequence: davis.Sequence) -> range:
  """Indices of the frames scored: all but the first (given) and the last.

  Raises:
    ValueError: fewer than 3 frames.
  """
  if len(sequence.frames) < 3:
    raise ValueError(
      f'sequence {sequence.name!r} has {len(sequence.frames)} frames: scoring skips the '
      'first and the last, so it needs at least 3'
    )
  return range(1, len(sequence.frames) - 1)


def _frames_of(davis_root, results_dir, name: str, single_object: bool, resolution: str):
  """(object ids, scored frame names, [_Frame]) of one sequence, its files checked to exist."""
  sequence = davis.load_sequence(davis_root, name, resolution)
  scored = scored_frames(sequence)
  folder = Path(results_dir) / name
  if not folder.is_dir():
    raise FileNotFoundError(f'results folder {folder} for sequence {name!r} does not exist')
  object_ids = (1,) if single_object else sequence.object_ids
  names = tuple(sequence.frames[i].stem for i in scored)
  frames = []
  for i, frame in zip(scored, names):
    if sequence.annotations[i] is None:
      raise FileNotFoundError(f'sequence {name!r}: frame {frame} has no annotation mask')
    frames.append(
      _Frame(
        name,
        sequence.annotations[i],
        folder / f'{frame}.png',
        object_ids,
        sequence.binary_255,
        single_object,
      )
    )
  return object_ids, names, frames


def _score_frame(frame: _Frame) -> np.ndarray:
  """float64 [2, K]: J and F of each object in one frame."""
  return score_prediction(
    mask_io.read_indexed_png(frame.annotation),
    mask_io.read_indexed_png(frame.result),
    frame.object_ids,
    frame.binary_255,
    frame.single_object,
    where=f'result {frame.result}',
  )


def score_prediction(
  raw: np.ndarray,
  pred: np.ndarray,
  object_ids: tuple[int, ...],
  binary_255: bool,
  single_object: bool,
  where: str = 'the prediction',
) -> np.ndarray:
  """float64 [2, K]: J and F of each object of one frame.

  Args:
    raw: [H, W] uint8 annotation as stored (see `masks.decode_mask`).
    pred: [H, W] uint8 predicted object ids.
    object_ids: the K scored ids.
    binary_255: the annotation stores its object as 255 (DAVIS-2016).
    single_object: merge every object into one.
    where: what `pred` is, for error messages.
  """
  if pred.shape != raw.shape:
    raise ValueError(f'{where} is {pred.shape} (H, W) but its annotation is {raw.shape}')
  if single_object:
    pairs = [(mask_io.object_pixels(raw, binary_255), pred != 0)]
  else:
    gt = mask_io.decode_mask(raw, binary_255)
    pred = mask_io.decode_mask(pred, binary_255=None)
    if pred.max() > len(object_ids):
      raise ValueError(
        f'{where} holds object id {pred.max()} but only {len(object_ids)} object(s) are annotated'
      )
    pairs = [(gt == obj, pred == obj) for obj in object_ids]
  return np.array([metrics.frame_scores(gt_k, pred_k) for gt_k, pred_k in pairs]).T


def score_all(
  davis_root,
  results_dir,
  sequences,
  single_object: bool = False,
  workers: int = 1,
  resolution: str = '480p',
) -> list[SequenceScores]:
  """Per-frame scores of each of `sequences`, in order; frames are spread over `workers` threads.

  Threads suffice: PNG decoding, OpenCV and the large numpy operations release the GIL.

  Raises:
    FileNotFoundError: a missing results folder, result frame or annotation.
    ValueError: a result mask of the wrong size or with an unknown object id.
  """
  missing = [s for s in sequences if not (Path(results_dir) / s).is_dir()]
  if missing:
    raise FileNotFoundError(
      f'results folder {results_dir} has no folder for sequence(s) ' + ', '.join(missing)
    )
  layout = [_frames_of(davis_root, results_dir, s, single_object, resolution) for s in sequences]
  frames = [frame for _, _, seq_frames in layout for frame in seq_frames]
  if workers <= 1:
    per_frame = list(map(_score_frame, frames))
  else:
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
      per_frame = list(pool.map(_score_frame, frames))
  scores, start = [], 0
  for name, (object_ids, names, seq_frames) in zip(sequences, layout):
    stack = np.stack(per_frame[start : start + len(seq_frames)], axis=-1)  # [2, K, T]
    start += len(seq_frames)
    scores.append(SequenceScores(name, object_ids, names, stack[0], stack[1]))
  return scores


def score_sequence(
  davis_root, results_dir, name: str, single_object: bool = False, resolution: str = '480p'
) -> SequenceScores:
  """Scores `<results_dir>/<name>/<frame>.png` against the annotations of sequence `name`."""
  return score_all(davis_root, results_dir, [name], single_object, 1, resolution)[0]


def tables(scores: list[SequenceScores]) -> tuple[dict[str, float], list[dict]]:
  """Global and per-sequence tables of scored sequences.

  Returns:
    (global table {GLOBAL_COLUMNS[i]: value}, per-sequence rows {SEQUENCE_COLUMNS[i]: value} with
    one row per object named '<sequence>_<object id>').
  """
  rows, j_stats, f_stats = [], [], []
  for seq in scores:
    for k, obj in enumerate(seq.object_ids):
      j_stats.append(statistics(seq.j[k]))
      f_stats.append(statistics(seq.f[k]))
      rows.append(
        {'Sequence': f'{seq.name}_{obj}', 'J-Mean': j_stats[-1][0], 'F-Mean': f_stats[-1][0]}
      )
  if not rows:
    raise ValueError('no objects were scored')
  j_mean, j_recall, j_decay = np.mean(j_stats, axis=0)
  f_mean, f_recall, f_decay = np.mean(f_stats, axis=0)
  values = ((j_mean + f_mean) / 2, j_mean, j_recall, j_decay, f_mean, f_recall, f_decay)
  return dict(zip(GLOBAL_COLUMNS, map(float, values))), rows


def score_results(
  davis_root,
  results_dir,
  sequences,
  single_object: bool = False,
  workers: int = 1,
  resolution: str = '480p',
) -> tuple[dict[str, float], list[dict]]:
  """Scores a results folder; returns (global table, per-sequence table) as `tables` does.

  Args:
    davis_root: DAVIS root (JPEGImages/, Annotations/).
    results_dir: folder of `<sequence>/<frame>.png` result masks.
    sequences: names to score, e.g. `davis.list_sequences(davis_root, 'val')`.
    single_object: merge all objects into one (DAVIS-2016).
    workers: threads to spread the frames over.
    resolution: '480p' or 'Full-Resolution'.

  Raises:
    FileNotFoundError: a missing results folder, result frame or annotation.
    ValueError: a result mask of the wrong size or with an unknown object id.
  """
  return tables(
    score_all(davis_root, results_dir, list(sequences), single_object, workers, resolution)
  )


def score_folder(
  davis_root,
  results_dir,
  sequences,
  *,
  split: str = 'val',
  single_object: bool = False,
  workers: int = 1,
  resolution: str = '480p',
  replace_csvs: bool = False,
) -> tuple[dict[str, float], list[dict]]:
  """`score_results`, then both CSVs written into `results_dir` and the tables printed.

  Raises:
    FileNotFoundError: `results_dir` is missing (and the errors of `score_results`).
    FileExistsError: a CSV is already there and `replace_csvs` is False.
  """
  results_dir = Path(results_dir)
  if not results_dir.is_dir():
    raise FileNotFoundError(f'results folder {results_dir} does not exist: nothing to score')
  existing = [p for p in csv_paths(results_dir, split) if p.exists()]
  if existing and not replace_csvs:
    raise FileExistsError(
      f'{", ".join(map(str, existing))} already exist(s): pass --overwrite to replace them'
    )
  global_table, sequence_table = score_results(
    davis_root, results_dir, sequences, single_object, workers, resolution
  )
  write_csvs(results_dir, global_table, sequence_table, split)
  print(format_tables(global_table, sequence_table, split), flush=True)
  return global_table, sequence_table


def csv_paths(results_dir, split: str = 'val') -> tuple[Path, Path]:
  """`global_results-<split>.csv` and `per-sequence_results-<split>.csv` of a results folder."""
  results_dir = Path(results_dir)
  return (
    results_dir / f'global_results-{split}.csv',
    results_dir / f'per-sequence_results-{split}.csv',
  )


def write_csvs(
  out_dir, global_table: dict[str, float], sequence_table: list[dict], split: str = 'val'
) -> tuple[Path, Path]:
  """Writes `global_results-<split>.csv` and `per-sequence_results-<split>.csv` (3 decimals), each
  whole or not at all (under a temporary name, then renamed)."""
  global_path, sequence_path = csv_paths(out_dir, split)
  global_path.parent.mkdir(parents=True, exist_ok=True)
  for path, columns, rows in (
    (global_path, GLOBAL_COLUMNS, [global_table]),
    (sequence_path, SEQUENCE_COLUMNS, sequence_table),
  ):
    partial = path.with_name(f'.{path.name}.partial')
    with open(partial, 'w', newline='') as f:
      writer = csv.writer(f, lineterminator='\n')
      writer.writerow(columns)
      writer.writerows([_format(row[c], '%.3f') for c in columns] for row in rows)
    os.replace(partial, path)
  return global_path, sequence_path


def _format(value, float_format: str) -> str:
  return float_format % value if isinstance(value, float) else str(value)


def _text_table(columns, rows) -> str:
  cells = [list(columns)] + [[_format(row[c], '%.6f') for c in columns] for row in rows]
  widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
  return '\n'.join(' '.join(c.rjust(w) for c, w in zip(r, widths)) for r in cells)


def format_tables(
  global_table: dict[str, float], sequence_table: list[dict], split: str = 'val'
) -> str:
  """The two tables as console text."""
  return (
    f'{"-" * 27} Global results for {split} {"-" * 27}\n'
    f'{_text_table(GLOBAL_COLUMNS, [global_table])}\n\n'
    f'{"-" * 10} Per sequence results for {split} {"-" * 10}\n'
    f'{_text_table(SEQUENCE_COLUMNS, sequence_table)}'
  )
