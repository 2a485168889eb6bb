"""Superpixel speed: ISEC (with per-stage times), SLIC and the JAX SLIC on 240p and 480p frames;
and superpixel quality of scikit-image's SLIC against the JAX SLIC on DAVIS annotations.

  python benchmarks/superpixels.py [--image=FRAME.jpg] [--repeats=3]
  python benchmarks/superpixels.py --davis_root=../shared/data/davis2016-sample --nospeed \
    [--every=10] [--json=OUT.json]

Speed: without --image the frames of `../shared/parity/v1/isec.npz` are used (240x427 and
480x854); a JPEG is used at its own size and at half size. Times are the best of `--repeats`
runs, in milliseconds; the JAX SLIC is timed after a warm-up call that compiles it.

Quality (--davis_root, DAVIS layout `JPEGImages/480p/<seq>/*.jpg`, `Annotations/480p/<seq>/*.png`
single-object masks): every `--every`-th frame of every sequence, at 480p and at half size (frames
cv2.INTER_AREA, masks nearest), with n_segments `--n_segments_480p` / `--n_segments_240p`,
compactness 20 and sigma 1 for both methods. Per method and size, means over the frames of
- boundary recall: the fraction of annotation boundary pixels with a superpixel boundary pixel
  within 2 pixels (Chebyshev distance); a boundary pixel is one with a 4-neighbour of another
  label; frames whose annotation has no boundary are left out of this mean;
- undersegmentation error (Neubert & Protzel's corrected form): sum over the annotation's
  segments G (object and background) and superpixels S meeting G of min(|S & G|, |S - G|),
  over the pixel count; for two segments it is 2 * (1 - ASA);
- achievable segmentation accuracy: the fraction of pixels right when every superpixel takes its
  majority class;
- segments per frame, and CPU seconds per frame (one call per frame; the JAX SLIC after a
  warm-up compile per size, waited for with block_until_ready).
"""

import json
import time
from pathlib import Path

import cv2
import jax
import numpy as np
from absl import app, flags

from shls_jax import superpixels
from shls_jax.io import frames as frame_io
from shls_jax.io import masks as mask_io
from shls_jax.superpixels import slic_jax

_ISEC_NPZ = Path(__file__).resolve().parents[2] / 'shared' / 'parity' / 'v1' / 'isec.npz'

FLAGS = flags.FLAGS
flags.DEFINE_string('image', None, 'a JPEG frame (default: isec.npz)')
flags.DEFINE_integer('repeats', 3, 'runs per measurement, best of them')
flags.DEFINE_bool('speed', True, 'run the speed section (ISEC, SLIC, JAX SLIC)')
flags.DEFINE_string('davis_root', None, 'DAVIS folder: run the quality section on it')
flags.DEFINE_integer('every', 10, 'quality: every N-th frame of each sequence')
flags.DEFINE_integer('n_segments_480p', 1000, 'quality: n_segments at full size')
flags.DEFINE_integer('n_segments_240p', 500, 'quality: n_segments at half size')
flags.DEFINE_integer('capacity', 2048, 'JAX SLIC label capacity')
flags.DEFINE_string('json', None, 'quality: write the table to this JSON file')

_TOLERANCE = 2  # boundary recall: Chebyshev distance in pixels


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


def boundaries(labels: np.ndarray) -> np.ndarray:
  """[H, W] bool: pixels with a 4-neighbour of another label (both sides of every edge)."""
  out = np.zeros(labels.shape, bool)
  vertical = labels[1:] != labels[:-1]
  horizontal = labels[:, 1:] != labels[:, :-1]
  out[1:] |= vertical
  out[:-1] |= vertical
  out[:, 1:] |= horizontal
  out[:, :-1] |= horizontal
  return out


def quality(labels: np.ndarray, mask: np.ndarray) -> dict[str, float]:
  """Boundary recall (NaN without annotation boundary), undersegmentation error and achievable
  segmentation accuracy of superpixels [H, W] int (1..N) against a [H, W] bool object mask."""
  gt_edges = boundaries(mask)
  size = 2 * _TOLERANCE + 1
  near = cv2.dilate(boundaries(labels).astype(np.uint8), np.ones((size, size), np.uint8)) > 0
  recall = float(near[gt_edges].mean()) if gt_edges.any() else float('nan')
  flat = labels.ravel()
  inside = np.bincount(flat, weights=mask.ravel(), minlength=flat.max() + 1)
  outside = np.bincount(flat, minlength=flat.max() + 1) - inside
  leak = np.minimum(inside, outside).sum()
  return {
    'boundary_recall': recall,
    # Each superpixel straddling the boundary counts once for the object and once for the
    # background: min(|S & G|, |S - G|) is the same for both.
    'undersegmentation_error': float(2 * leak / flat.size),
    'asa': float(np.maximum(inside, outside).sum() / flat.size),
    'segments': float(flat.max()),
  }


def davis_samples(root: Path, every: int) -> list[tuple[Path, Path]]:
  """(frame, annotation) paths of every `every`-th frame of each 480p sequence."""
  samples = []
  for seq in sorted(p for p in (root / 'JPEGImages' / '480p').iterdir() if p.is_dir()):
    for frame in frame_io.image_files(seq)[::every]:
      samples.append((frame, root / 'Annotations' / '480p' / seq.name / f'{frame.stem}.png'))
  if not samples:
    raise FileNotFoundError(f'no frames under {root}/JPEGImages/480p')
  return samples


def quality_table(root: Path, every: int) -> list[dict]:
  """One row per (size, method): mean quality and seconds per frame."""
  samples = davis_samples(root, every)
  sizes = {'480p': FLAGS.n_segments_480p, '240p': FLAGS.n_segments_240p}
  per = {(s, m): [] for s in sizes for m in ('skimage', 'jax')}
  warm = set()
  for frame_path, mask_path in samples:
    full = frame_io.read_frame(frame_path)
    full_mask = mask_io.read_mask(mask_path, binary_255=None, single_object=True) > 0
    h, w = full.shape[:2]
    for size, n_segments in sizes.items():
      if size == '480p':
        frame, mask = full, full_mask
      else:
        frame = cv2.resize(full, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
        mask = mask_io.resize_ids(full_mask.astype(np.uint8), (h // 2, w // 2)) > 0

      start = time.perf_counter()
      labels = superpixels.compute(frame, 'slic', n_segments=n_segments)
      per[size, 'skimage'].append((quality(labels, mask), time.perf_counter() - start))

      run = lambda x=frame, n=n_segments: slic_jax.segment_jit(
        x, n_segments=n, capacity=FLAGS.capacity
      )
      if (frame.shape, n_segments) not in warm:
        jax.block_until_ready(run())
        warm.add((frame.shape, n_segments))
      start = time.perf_counter()
      labels, count = jax.block_until_ready(run())
      seconds = time.perf_counter() - start
      if int(count) > FLAGS.capacity:
        raise ValueError(f'{int(count)} superpixels exceed --capacity {FLAGS.capacity}')
      per[size, 'jax'].append((quality(np.asarray(labels), mask), seconds))

  rows = []
  for (size, method), results in per.items():
    row = {'method': method, 'size': size, 'n_segments': sizes[size], 'frames': len(results)}
    for key in results[0][0]:
      row[key] = float(np.nanmean([r[key] for r, _ in results]))
    row['seconds_per_frame'] = float(np.mean([t for _, t in results]))
    rows.append(row)
  for row in rows:
    ref = next(r for r in rows if r['size'] == row['size'] and r['method'] == 'skimage')
    row['time_vs_skimage'] = row['seconds_per_frame'] / ref['seconds_per_frame']
  return rows


def print_quality(rows: list[dict]) -> None:
  print(
    f'{"method":<9}{"size":>6}{"n_seg":>7}{"frames":>8}{"BR@2":>8}{"UE":>8}{"ASA":>8}'
    f'{"segments":>10}{"s/frame":>10}{"x skimage":>11}'
  )
  for r in rows:
    print(
      f'{r["method"]:<9}{r["size"]:>6}{r["n_segments"]:>7}{r["frames"]:>8}'
      f'{r["boundary_recall"]:>8.4f}{r["undersegmentation_error"]:>8.4f}{r["asa"]:>8.4f}'
      f'{r["segments"]:>10.1f}{r["seconds_per_frame"]:>10.3f}{r["time_vs_skimage"]:>11.2f}'
    )


def speed(image: Path | None, repeats: int) -> None:
  rows, stage_rows = [], []
  for size, frame in load_frames(image).items():
    labels, seconds, stages = best_of(
      repeats, lambda t, x=frame: superpixels.compute(x, 'isec', timings=t)
    )
    rows.append(('isec', size, seconds, int(labels.max())))
    stage_rows.append((size, stages))
    labels, seconds, _ = best_of(repeats, lambda t, x=frame: superpixels.compute(x, 'slic'))
    rows.append(('slic', size, seconds, int(labels.max())))
    run = lambda t, x=frame: jax.block_until_ready(
      slic_jax.segment_jit(x, n_segments=300, capacity=FLAGS.capacity)
    )
    run({})
    (_, count), seconds, _ = best_of(repeats, run)
    rows.append(('slic_jax', size, seconds, int(count)))

  print(f'{"method":<10}{"size":>10}{"ms":>10}{"segments":>10}')
  for method, size, seconds, count in rows:
    print(f'{method:<10}{size:>10}{1000 * seconds:>10.1f}{count:>10d}')
  print()
  names = list(stage_rows[0][1])
  print(f'{"ISEC stage ms":<14}' + ''.join(f'{n:>12}' for n in names))
  for size, stages in stage_rows:
    print(f'{size:<14}' + ''.join(f'{1000 * stages[n]:>12.1f}' for n in names))


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  if FLAGS.speed:
    speed(Path(FLAGS.image) if FLAGS.image else None, FLAGS.repeats)
  if FLAGS.davis_root:
    rows = quality_table(Path(FLAGS.davis_root), FLAGS.every)
    if FLAGS.speed:
      print()
    print_quality(rows)
    if FLAGS.json:
      settings = {
        'compactness': 20.0,
        'sigma': 1.0,
        'every': FLAGS.every,
        'davis_root': FLAGS.davis_root,
      }
      Path(FLAGS.json).write_text(json.dumps({'settings': settings, 'rows': rows}, indent=2) + '\n')


if __name__ == '__main__':
  app.run(main)
