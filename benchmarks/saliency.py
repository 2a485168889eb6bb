"""Pseudo-mask quality and speed against real salient-object masks, tuned on some sequences and
reported on the others: prints a table.

  python benchmarks/saliency.py --davis_root=../shared/data/davis2016-sample \
      [--tune_sequences=blackswan,car-shadow] [--tune_every=2] [--every=10] [--workdir=DIR]
  python benchmarks/saliency.py --davis_root=... --tune=fused [--param=NAME=VALUE ...]

Annotated frames of DAVIS-2016 sequences (one salient object per frame: exactly a
salient-object benchmark) are segmented at 480p by each method of `shls_jax.data.saliency` and by
the centred-ellipse prior (axes 60% of the image height and width). Every `--tune_every`-th frame
of `--tune_sequences` makes the tune columns, every `--every`-th frame of the other sequences the
report columns: a parameter or method is chosen on the tune columns only (`--tune`), the report
columns say what it is worth on frames that chose nothing.

Columns: mean IoU of the binary masks (`saliency.binary_mask`), max F-measure (beta^2 = 0.3;
precision and recall averaged over images at each of 255 thresholds), MAE, seconds per image.
`self_trained` learns over every frame of the root (no annotation read; its state cached in
`--workdir`) and adds a row per round: the network's own map before the final GrabCut.

`--tune METHOD` loads the tune sequences only (every `--tune_every`-th frame), scores each
setting of the method's grid (`GRIDS`) and prints them best first.
"""

import itertools
import json
import time
from pathlib import Path

import cv2
import numpy as np
from absl import app, flags

from shls_jax.data import davis, pseudo_masks, saliency, self_training
from shls_jax.io import frames as frame_io
from shls_jax.io import masks as mask_io

_BETA2 = 0.3
# Chosen on the tune columns of the shared sample; the defaults of `saliency.DEFAULTS` came
# from these grids.
GRIDS = {
  'fused': {
    'w_connectivity': [0.0, 1.0],
    'w_barrier': [0.0, 1.0],
    'w_global_contrast': [0.0, 1.0],
    'fusion': ['mean', 'rank'],
    'centre_power': [0.0, 1.0, 2.0],
  },
  'fused_cut': {
    'w_boundary_connectivity': [0.0, 1.0, 2.0],
    'foreground': [0.5, 0.6, 0.7],
    'background': [0.2, 0.3, 0.4],
  },
}

FLAGS = flags.FLAGS
flags.DEFINE_string('davis_root', None, 'DAVIS-2016-layout folder')
flags.DEFINE_list('tune_sequences', ['blackswan', 'car-shadow'], 'sequences of the tune columns')
flags.DEFINE_integer('every', 10, 'every n-th annotated frame of the report sequences')
flags.DEFINE_list(
  'methods',
  [m for m in saliency.METHODS if m not in saliency.FOLDER_METHODS] + ['self_trained'],
  'methods of shls_jax.data.saliency',
)
flags.DEFINE_string('workdir', 'workdir/saliency_benchmark', 'cache of the self-training state')
flags.DEFINE_string('tune', None, f'grid-search one method on the tune columns: {list(GRIDS)}')
flags.DEFINE_integer('tune_every', 2, 'every n-th annotated frame of the tune sequences')
flags.DEFINE_multi_string('param', [], 'NAME=VALUE parameter of every method that has it')
flags.DEFINE_string('json', None, 'also write the rows to this JSON file')
flags.mark_flag_as_required('davis_root')


def ellipse(shape) -> np.ndarray:
  """[H, W] float32 centred ellipse with axes 60% of the height and width."""
  height, width = shape
  rows, cols = np.mgrid[0:height, 0:width]
  inside = ((rows + 0.5 - height / 2) / (0.3 * height)) ** 2 + (
    (cols + 0.5 - width / 2) / (0.3 * width)
  ) ** 2
  return (inside <= 1).astype(np.float32)


def iou(pred: np.ndarray, gt: np.ndarray) -> float:
  union = np.count_nonzero(pred | gt)
  return np.count_nonzero(pred & gt) / union if union else 1.0


class Scores:
  """Accumulates the metrics of one map over images."""

  def __init__(self):
    self.iou, self.mae, self.seconds, self.precision, self.recall = [], [], [], [], []
    self.per_sequence = {}

  def add(self, sequence, soft, binary, gt, seconds):
    self.iou.append(iou(binary, gt))
    self.per_sequence.setdefault(sequence, []).append(self.iou[-1])
    self.mae.append(float(np.mean(np.abs(soft - gt))))
    self.seconds.append(seconds)
    # Precision and recall at every threshold, from one histogram per class.
    levels = np.clip(np.round(soft * 255).astype(np.int64), 0, 255)
    fg = np.bincount(levels[gt], minlength=256)[::-1].cumsum()[::-1][1:]
    bg = np.bincount(levels[~gt], minlength=256)[::-1].cumsum()[::-1][1:]
    self.precision.append(fg / np.maximum(fg + bg, 1))
    self.recall.append(fg / max(np.count_nonzero(gt), 1))

  def summary(self) -> dict:
    precision, recall = np.mean(self.precision, 0), np.mean(self.recall, 0)
    f = (1 + _BETA2) * precision * recall / np.maximum(_BETA2 * precision + recall, 1e-12)
    return {
      'iou': float(np.mean(self.iou)),
      'max_f': float(f.max()),
      'mae': float(np.mean(self.mae)),
      'seconds': float(np.mean(self.seconds)),
      'frames': len(self.iou),
      'per_sequence': {s: float(np.mean(v)) for s, v in self.per_sequence.items()},
    }


def _overrides(method: str) -> dict:
  """The `--param` values that `method` has."""
  params = dict(text.split('=', 1) for text in FLAGS.param)
  return {k: v for k, v in params.items() if k in saliency.DEFAULTS[method]}


def _frames(root, sequences, every):
  """(sequence, RGB image, bool mask) of every `every`-th annotated frame of `sequences`."""
  for name in sequences:
    sequence = davis.load_sequence(root, name)
    for t in range(0, len(sequence.frames), every):
      if sequence.annotations[t] is not None:
        gt = mask_io.read_mask(sequence.annotations[t], binary_255=sequence.binary_255) > 0
        yield name, frame_io.read_frame(sequence.frames[t]), gt


def _tune(root, method) -> None:
  frames = list(_frames(root, FLAGS.tune_sequences, FLAGS.tune_every))
  grid = GRIDS[method]
  rows = []
  for values in itertools.product(*grid.values()):
    setting = dict(zip(grid, values))
    if all(
      setting.get(f'w_{cue}', 1) == 0 for cue in ('connectivity', 'barrier', 'global_contrast')
    ):
      continue
    params = {**_overrides(method), **setting}
    scores = Scores()
    for name, image, gt in frames:
      soft = saliency.saliency_map(image, method, params)
      scores.add(name, soft, saliency.binary_mask(soft, method), gt, 0.0)
    summary = scores.summary()
    rows.append((summary['iou'], summary['max_f'], setting))
  print(f'{method} on {len(frames)} frames of {",".join(FLAGS.tune_sequences)}, best first\n')
  print('| tune IoU | tune max F | setting |\n|---|---|---|')
  for score, max_f, setting in sorted(rows, key=lambda r: -r[0]):
    print(f'| {score:.3f} | {max_f:.3f} | {setting} |')


def _self_trained_networks(root, params) -> tuple[list, float, int]:
  """The round networks of `self_trained` learnt over every frame of `root`, the seconds it
  took per image (0 when cached) and the number of images."""
  groups = [davis.load_sequence(root, s).frames for s in davis.list_sequences(root)]
  start = time.perf_counter()
  networks = pseudo_masks.fit_self_training(groups, Path(FLAGS.workdir), params, workers=2)
  count = sum(map(len, groups))
  return networks, (time.perf_counter() - start) / count, count


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  root = FLAGS.davis_root
  if FLAGS.tune:
    _tune(root, FLAGS.tune)
    return
  methods = FLAGS.methods
  scores, fit_note = {'ellipse': (Scores(), Scores())}, ''
  per_image = [m for m in methods if m not in saliency.FOLDER_METHODS]
  for method in per_image:
    scores[method] = (Scores(), Scores())
  if 'self_trained' in methods:
    p = saliency.parameters('self_trained', _overrides('self_trained'))
    networks, fit_seconds, count = _self_trained_networks(root, p)
    fit_note = f'self-training: {fit_seconds:.2f} s per image over {count} images'
    for k in range(1, len(networks) + 1):
      scores[f'self_trained round {k} (network)'] = (Scores(), Scores())
    scores['self_trained'] = (Scores(), Scores())
  sequences = davis.list_sequences(root)
  tune = [s for s in sequences if s in FLAGS.tune_sequences]
  report = [s for s in sequences if s not in FLAGS.tune_sequences]
  frames = itertools.chain(
    _frames(root, tune, FLAGS.tune_every), _frames(root, report, FLAGS.every)
  )
  for name, image, gt in frames:
    column = 0 if name in FLAGS.tune_sequences else 1
    prior = ellipse(gt.shape)
    scores['ellipse'][column].add(name, prior, prior > 0, gt, 0.0)
    for method in per_image:
      start = time.perf_counter()
      soft = saliency.saliency_map(image, method, _overrides(method))
      binary = saliency.binary_mask(soft, method)
      scores[method][column].add(name, soft, binary, gt, time.perf_counter() - start)
    if 'self_trained' in methods:
      square = cv2.resize(image, (p['size'], p['size']), interpolation=cv2.INTER_AREA)
      for k, network in enumerate(networks, 1):
        start = time.perf_counter()
        small = self_training.predict_all(network, square[None], p)[0]
        soft = cv2.resize(small, gt.shape[::-1], interpolation=cv2.INTER_LINEAR)
        seconds = time.perf_counter() - start
        scores[f'self_trained round {k} (network)'][column].add(
          name, soft, soft >= 0.5, gt, seconds + fit_seconds
        )
      if p['refine']:
        start = time.perf_counter()
        soft = saliency.refine(image, soft, p)
        seconds += time.perf_counter() - start
      scores['self_trained'][column].add(name, soft, soft >= 0.5, gt, seconds + fit_seconds)
  rows = {name: [s.summary() for s in pair] for name, pair in scores.items()}
  print(
    f'{root} at 480p: tune columns every {FLAGS.tune_every}th frame of {",".join(tune)} '
    f'({rows["ellipse"][0]["frames"]} frames), report columns every {FLAGS.every}th frame of '
    f'{",".join(report)} ({rows["ellipse"][1]["frames"]} frames)\n'
  )
  print(
    '| map | tune IoU | tune max F | tune MAE | report IoU | report max F | report MAE | s / image |'
  )
  print('|---|---|---|---|---|---|---|---|')
  for name, (t, r) in rows.items():
    print(
      f'| {name} | {t["iou"]:.3f} | {t["max_f"]:.3f} | {t["mae"]:.3f} | {r["iou"]:.3f} | '
      f'{r["max_f"]:.3f} | {r["mae"]:.3f} | {r["seconds"]:.2f} |'
    )
  if fit_note:
    print(f'\n{fit_note} (in the s / image of its rows)')
  print('\nmean IoU per sequence')
  for name, pair in rows.items():
    both = {**pair[0]['per_sequence'], **pair[1]['per_sequence']}
    print(name, ' '.join(f'{s} {v:.2f}' for s, v in both.items()))
  if FLAGS.json:
    Path(FLAGS.json).write_text(json.dumps(rows, indent=2) + '\n')


if __name__ == '__main__':
  app.run(main)
