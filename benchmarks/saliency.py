"""Pseudo-mask quality and speed against real salient-object masks: prints a table.

  python benchmarks/saliency.py --davis_root=../shared/data/davis2016-sample [--every=5]

Every `--every`-th annotated frame of each DAVIS-2016 sequence (one salient object per frame:
exactly a salient-object benchmark) is segmented at 480p by each method of
`shls_jax.data.saliency` and by the centred-ellipse prior (axes 60% of the image height and
width). Columns: mean IoU of the map thresholded at 128 and of the `--binary` masks, max
F-measure (beta^2 = 0.3; precision and recall averaged over images at each of 255 thresholds),
MAE, and seconds per image (the ellipse is the baseline every method must beat).
"""

import time

import numpy as np
from absl import app, flags

from shls_jax.data import davis, saliency
from shls_jax.io import frames as frame_io
from shls_jax.io import masks as mask_io

_BETA2 = 0.3
_THRESHOLDS = np.arange(1, 256) / 255.0

FLAGS = flags.FLAGS
flags.DEFINE_string('davis_root', None, 'DAVIS-2016-layout folder')
flags.DEFINE_integer('every', 5, 'every n-th annotated frame')
flags.DEFINE_list('methods', list(saliency.METHODS), 'methods of shls_jax.data.saliency')
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
  """Accumulates the metrics of one method over images."""

  def __init__(self):
    self.iou128, self.iou_binary, self.mae, self.seconds = [], [], [], []
    self.precision, self.recall = [], []

  def add(self, soft, binary, gt, seconds):
    self.iou128.append(iou(soft >= 0.5, gt))
    self.iou_binary.append(iou(binary, gt))
    self.mae.append(float(np.mean(np.abs(soft - gt))))
    self.seconds.append(seconds)
    # Precision and recall at every threshold, from one histogram per class.
    levels = np.clip(np.round(soft * 255).astype(np.int64), 0, 255)
    fg = np.bincount(levels[gt], minlength=256)[::-1].cumsum()[::-1]
    bg = np.bincount(levels[~gt], minlength=256)[::-1].cumsum()[::-1]
    fg, bg = fg[1:], bg[1:]
    self.precision.append(fg / np.maximum(fg + bg, 1))
    self.recall.append(fg / max(np.count_nonzero(gt), 1))

  def row(self, name):
    precision, recall = np.mean(self.precision, 0), np.mean(self.recall, 0)
    f = (1 + _BETA2) * precision * recall / np.maximum(_BETA2 * precision + recall, 1e-12)
    return (
      name,
      np.mean(self.iou128),
      np.mean(self.iou_binary),
      float(f.max()),
      np.mean(self.mae),
      np.mean(self.seconds),
    )


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  davis_root, every, methods = FLAGS.davis_root, FLAGS.every, FLAGS.methods
  scores = {name: Scores() for name in ['ellipse', *methods]}
  per_sequence = {name: {} for name in scores}
  count = 0
  for name in davis.list_sequences(davis_root):
    sequence = davis.load_sequence(davis_root, name)
    for t in range(0, len(sequence.frames), every):
      if sequence.annotations[t] is None:
        continue
      image = frame_io.read_frame(sequence.frames[t])
      gt = mask_io.read_mask(sequence.annotations[t], binary_255=sequence.binary_255) > 0
      count += 1
      prior = ellipse(gt.shape)
      scores['ellipse'].add(prior, prior > 0, gt, 0.0)
      per_sequence['ellipse'].setdefault(name, []).append(iou(prior > 0, gt))
      for method in methods:
        start = time.perf_counter()
        soft = saliency.saliency_map(image, method)
        binary = saliency.binary_mask(soft, method)
        scores[method].add(soft, binary, gt, time.perf_counter() - start)
        per_sequence[method].setdefault(name, []).append(iou(binary, gt))
  print(f'{count} frames of {davis_root} (every {every}th), 480p\n')
  print('| map | mean IoU @128 | mean IoU binary | max F (b2 0.3) | MAE | s / image |')
  print('|---|---|---|---|---|---|')
  for name, score in scores.items():
    row = score.row(name)
    print(
      f'| {row[0]} | {row[1]:.3f} | {row[2]:.3f} | {row[3]:.3f} | {row[4]:.3f} | {row[5]:.2f} |'
    )
  print('\nmean IoU of the binary masks per sequence')
  for name, sequences in per_sequence.items():
    print(name, ' '.join(f'{s} {np.mean(v):.2f}' for s, v in sequences.items()))


if __name__ == '__main__':
  app.run(main)
