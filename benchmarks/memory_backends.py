"""The on-device memory of inference against the host (faiss) memory: agreement and speed.

  python benchmarks/memory_backends.py --checkpoint=workdir/checkpoints \
      [--davis_root=../shared/data/davis2016-sample] [--sequences=a,b] [--frames=20] \
      [--size=240,432] [--segments=500] [--mode=fast]

Each sequence runs twice through the same engine settings, once per memory, on the same frames
and superpixels (SLIC at the working size). Per sequence: the mean and lowest per-frame mask IoU
between the two memories' masks (frames 1..T-1), each one's J against the annotations at the
working size beside the copy-first-mask J, and each memory's seconds per frame (its stage alone,
after a warm-up video). Without --checkpoint the weights are random (agreement then says little).
"""

from pathlib import Path

import jax
import numpy as np
from absl import app, flags

from shls_jax import checkpoints, superpixels
from shls_jax.data import davis
from shls_jax.evaluation import metrics
from shls_jax.inference import defaults
from shls_jax.inference.engine import Propagator
from shls_jax.io import masks as mask_io
from shls_jax.model import shls
from shls_jax.tools import cli

_SAMPLE = Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'davis2016-sample'
MEMORIES = ('faiss', 'device')

FLAGS = flags.FLAGS
flags.DEFINE_string('davis_root', str(_SAMPLE), 'DAVIS-layout folder')
flags.DEFINE_list('sequences', [], 'comma-separated; default the val split')
flags.DEFINE_string('checkpoint', None, 'orbax folder or reference .pth; default random')
flags.DEFINE_integer('frames', 20, 'first frames of each sequence')
flags.DEFINE_list('size', ['240', '432'], 'working height and width, H,W')
flags.DEFINE_integer('segments', 500, 'SLIC superpixels per frame')
flags.DEFINE_enum('mode', 'fast', ['fast', 'exact'], "the engine's mode")


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """[T] J of the object masks (nonzero ids) of two [T, H, W] stacks."""
  return metrics.jaccard(a > 0, b > 0)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  size = cli.size_flag(FLAGS.size, 'size')
  davis_root, checkpoint, mode = Path(FLAGS.davis_root), FLAGS.checkpoint, FLAGS.mode
  names = davis.select_sequences(davis_root, [s for s in FLAGS.sequences if s] or None)
  if checkpoint:
    variables = checkpoints.load_variables(checkpoint)
  else:
    variables = shls.init_variables(jax.random.PRNGKey(0))
  engines = {}
  for memory in MEMORIES:
    config = defaults.get_config()
    config.mode, config.memory = mode, memory
    # Both memories under the host frame rules: this compares the memories alone
    # (`benchmarks/device_frame.py` measures the device step).
    config.frame_step = False
    engines[memory] = Propagator(variables, config)

  videos = []
  for name in names:
    sequence = davis.load_sequence(davis_root, name)
    count = min(FLAGS.frames, len(sequence.frames))
    frames = davis.load_frames(sequence, size)[:count]
    spx = np.stack([superpixels.compute(f, 'slic', n_segments=FLAGS.segments) for f in frames])
    first = davis.first_mask(sequence, single_object=True, size=size)
    truth = davis.load_masks(sequence, range(count), size, single_object=True)
    videos.append((name, frames, spx, first, np.where(truth == mask_io.VOID, 0, truth)))
  # Warm-up: compilation for these shapes, not timed.
  for engine in engines.values():
    engine.run(*videos[0][1:4])
    engine.timings.clear()

  print(
    f'{mode} mode at {size[0]}x{size[1]}, {FLAGS.segments} SLIC segments, '
    f'{"checkpoint " + checkpoint if checkpoint else "random weights"}, '
    f'{jax.devices()[0].platform}'
  )
  header = (
    f'{"sequence":<12} {"frames":>6} {"IoU mean":>8} {"IoU min":>7} {"J faiss":>7} '
    f'{"J device":>8} {"J copy":>6} {"faiss s/f":>9} {"device s/f":>10}'
  )
  print(header)
  totals = []
  for name, frames, spx, first, truth in videos:
    masks, seconds = {}, {}
    for memory, engine in engines.items():
      before = engine.timings['memory']
      masks[memory] = np.asarray(engine.run(frames, spx, first).masks)
      seconds[memory] = (engine.timings['memory'] - before) / len(frames)
    agreement = _iou(masks['faiss'][1:], masks['device'][1:])
    copy = np.repeat(first[None], len(frames), axis=0)
    row = (
      agreement.mean(),
      agreement.min(),
      _iou(truth[1:], masks['faiss'][1:]).mean(),
      _iou(truth[1:], masks['device'][1:]).mean(),
      _iou(truth[1:], copy[1:]).mean(),
      seconds['faiss'],
      seconds['device'],
    )
    totals.append(row)
    print(
      f'{name:<12} {len(frames):>6} {row[0]:>8.3f} {row[1]:>7.3f} {row[2]:>7.3f} {row[3]:>8.3f} '
      f'{row[4]:>6.3f} {row[5]:>9.3f} {row[6]:>10.3f}'
    )
  mean = np.mean(totals, axis=0)
  low = np.min([t[1] for t in totals])
  print(
    f'{"mean":<12} {"":>6} {mean[0]:>8.3f} {low:>7.3f} {mean[2]:>7.3f} {mean[3]:>8.3f} '
    f'{mean[4]:>6.3f} {mean[5]:>9.3f} {mean[6]:>10.3f}'
  )


if __name__ == '__main__':
  app.run(main)
