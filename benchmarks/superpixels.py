"""Superpixel speed: ISEC (with per-stage times) and SLIC on 240p and 480p frames.

  python benchmarks/superpixels.py [--image=FRAME.jpg] [--repeats=3]

Without --image the frames of `../shared/parity/v1/isec.npz` are used (240x427 and 480x854); a
JPEG is used at its own size and at half size. Times are the best of `--repeats` runs, in
milliseconds.
"""

import time
from pathlib import Path

import cv2
import numpy as np
from absl import app, flags

from shls_jax import superpixels
from shls_jax.io import frames as frame_io

_ISEC_NPZ = Path(__file__).resolve().parents[2] / 'shared' / 'parity' / 'v1' / 'isec.npz'

FLAGS = flags.FLAGS
flags.DEFINE_string('image', None, 'a JPEG frame (default: isec.npz)')
flags.DEFINE_integer('repeats', 3, 'runs per measurement, best of them')


def load_frames(image: Path | None) -> dict[str, np.ndarray]:
  """Named [H, W, 3] RGB frames to time (uint8 or float32 in [0, 1])."""
  if image is not None:
    full = frame_io.read_frame(image)
    h, w = full.shape[:2]
    half = cv2.resize(full, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    return {f'{h // 2}x{w // 2}': half, f'{h}x{w}': full}
  if not _ISEC_NPZ.is_file():
    raise FileNotFoundError(f'{_ISEC_NPZ} is absent: pass --image FRAME.jpg')
  with np.load(_ISEC_NPZ) as f:
    frames = [f['image0'], f['image1']]
  return {f'{x.shape[0]}x{x.shape[1]}': x for x in frames}


def best_of(repeats: int, fn):
  """(result, best wall-clock seconds, per-stage seconds of the best run) of `fn(timings)`."""
  best, best_stages, result = float('inf'), {}, None
  for _ in range(repeats):
    stages = {}
    start = time.perf_counter()
    result = fn(stages)
    elapsed = time.perf_counter() - start
    if elapsed < best:
      best, best_stages = elapsed, stages
  return result, best, best_stages


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  image, repeats = (Path(FLAGS.image) if FLAGS.image else None), FLAGS.repeats

  rows, stage_rows = [], []
  for size, frame in load_frames(image).items():
    labels, seconds, stages = best_of(
      repeats, lambda t, x=frame: superpixels.compute(x, 'isec', timings=t)
    )
    rows.append(('isec', size, seconds, int(labels.max())))
    stage_rows.append((size, stages))
    labels, seconds, _ = best_of(repeats, lambda t, x=frame: superpixels.compute(x, 'slic'))
    rows.append(('slic', size, seconds, int(labels.max())))

  print(f'{"method":<8}{"size":>10}{"ms":>10}{"segments":>10}')
  for method, size, seconds, count in rows:
    print(f'{method:<8}{size:>10}{1000 * seconds:>10.1f}{count:>10d}')
  print()
  names = list(stage_rows[0][1])
  print(f'{"ISEC stage ms":<14}' + ''.join(f'{n:>12}' for n in names))
  for size, stages in stage_rows:
    print(f'{size:<14}' + ''.join(f'{1000 * stages[n]:>12.1f}' for n in names))


if __name__ == '__main__':
  app.run(main)
