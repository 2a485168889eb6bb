r"""Segments one's own video from a first-frame mask, in one command.

  shls-segment --video clip.mp4|FRAMES_DIR --mask first.png --checkpoint CKPT \
      --out OUT [--size H,W] [--mode fast] [--memory device] [--superpixels auto] [--fps N] \
      [--resize_mask] [--overwrite]

Writes `OUT/masks/00000.png`, ... (indexed PNGs with the DAVIS palette, object ids as in the
mask, at the input's size) and `OUT/overlay.mp4` (masks blended over the frames, at the video's
frame rate, or `--fps` for a folder of frames). The video is streamed (`Propagator.stream`): a
long one needs no more memory than a short one. The mask is an indexed PNG of object ids or a
0/255 PNG of one object; the checkpoint a reference `.pth` file or an orbax folder of train.py.
`--size` (default: the input's) is the size frames are segmented at; masks are written at the
input's size. Superpixels (`--superpixels`, `--slic_segments`) are computed per frame at that
size: by the JAX SLIC inside the frame step in fast mode on an accelerator, by scikit-image's
SLIC (on worker threads ahead of the engine) in exact mode and on a CPU. Fast mode
with `--memory device` runs each frame as one device step (`inference.frame_step`).
"""

import collections
import shutil
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from absl import flags
from tqdm import tqdm

from shls_jax import checkpoints, superpixels
from shls_jax.evaluation import evaluator
from shls_jax.inference import defaults as inference_defaults
from shls_jax.inference.engine import Propagator
from shls_jax.io import frames as frame_io
from shls_jax.io import masks as mask_io
from shls_jax.io import overlap
from shls_jax.memory import interface
from shls_jax.tools import cli

FLAGS = flags.FLAGS


def read_first_mask(path, size: tuple[int, int], resize: bool) -> np.ndarray:
  """[H, W] uint8 object ids of the first-frame mask at the frames' `size`.

  Raises:
    ValueError: a mask of another size (unless `resize`), or one without objects.
  """
  mask = mask_io.read_mask(path, binary_255=None)
  if mask.shape != tuple(size):
    if not resize:
      raise ValueError(
        f'mask {path} is {mask.shape} (H, W) but the frames are {tuple(size)}: '
        'pass --resize_mask to resize it (nearest neighbour)'
      )
    mask = mask_io.resize_ids(mask, size)
  mask = np.where(mask == mask_io.VOID, 0, mask).astype(np.uint8)
  if not mask.any():
    raise ValueError(f'mask {path} holds no object (every pixel is 0 or 255)')
  return mask


def check_output(out: Path, overwrite: bool) -> None:
  """Refuses an output folder holding anything, unless `overwrite`."""
  if out.exists() and not out.is_dir():
    raise NotADirectoryError(f'output {out} is a file')
  if out.is_dir() and any(out.iterdir()) and not overwrite:
    raise FileExistsError(f'output folder {out} is not empty: pass --overwrite to replace it')


def segment(
  source: frame_io.VideoSource,
  first_mask: np.ndarray,
  engine: Propagator,
  out: Path,
  size: tuple[int, int] | None = None,
  slic_segments: int = 1000,
  progress: bool = True,
  method: str = 'slic',
) -> tuple[int, float]:
  """Writes the masks and the overlay video of `source`; returns (frames, frames per second).

  Frames are decoded and resized by a thread ahead of the engine, host superpixels computed
  ahead by two threads, and masks and overlay frames written by a thread behind it.

  Args:
    source: the frames.
    first_mask: [H, W] uint8 ids at the source's size.
    engine: the propagation engine (with `slic_segments` for 'slic-jax').
    out: output folder (created).
    size: (h, w) to segment at; None = the source's size.
    slic_segments: SLIC superpixels per frame (host 'slic').
    progress: show a progress bar.
    method: 'slic-jax' (computed by the engine), 'slic' or 'isec' (on the host).
  """
  height, width = source.size
  work = tuple(size) if size else (height, width)
  masks_dir = out / 'masks'
  # A previous, longer run must not leave frames behind.
  shutil.rmtree(masks_dir, ignore_errors=True)
  masks_dir.mkdir(parents=True)
  video = cv2.VideoWriter(
    str(out / 'overlay.mp4'), cv2.VideoWriter_fourcc(*'mp4v'), source.fps, (width, height)
  )
  # Frames read but not written yet (the engine reads ahead), for their overlays.
  pending = collections.deque()

  def read():
    for frame in source:
      pending.append(frame)
      yield frame_io.resize_frame(frame, work)

  def with_superpixels(small):
    if method == 'slic-jax':
      return small, None
    params = {'n_segments': slic_segments} if method == 'slic' else {}
    return small, superpixels.compute(small, method, **params)

  def write(index, frame, mask):
    mask_io.write_mask(masks_dir / f'{index:05d}.png', mask)
    video.write(cv2.cvtColor(mask_io.overlay(frame, mask), cv2.COLOR_RGB2BGR))

  inputs = overlap.ordered_map(with_superpixels, overlap.prefetch(read()))
  start, count = time.perf_counter(), 0
  bar = tqdm(total=source.count, unit='frame', disable=not progress)
  try:
    with overlap.Writer() as writer:
      for result in engine.stream(inputs, mask_io.resize_ids(first_mask, work)):
        mask = first_mask if count == 0 else mask_io.resize_ids(result.mask, (height, width))
        writer.submit(write, count, pending.popleft(), mask)
        count += 1
        bar.update()
        bar.set_postfix(fps=f'{count / (time.perf_counter() - start):.2f}')
  finally:
    bar.close()
    video.release()
  return count, count / (time.perf_counter() - start)


def define_flags() -> None:
  flags.DEFINE_string('video', None, 'A video file or a folder of frames.')
  flags.DEFINE_string('mask', None, 'First-frame mask PNG (indexed object ids, or 0/255).')
  flags.DEFINE_string('checkpoint', None, 'Reference .pth file or orbax checkpoint folder.')
  flags.DEFINE_string('out', None, 'Output folder (masks/, overlay.mp4).')
  flags.DEFINE_list('size', None, 'H,W to segment at (default: the input size).')
  flags.DEFINE_enum('mode', 'fast', ('fast', 'exact'), 'Inference mode.')
  flags.DEFINE_enum('memory', 'faiss', interface.KINDS, 'Superfeature memory.')
  flags.DEFINE_enum(
    'superpixels',
    'auto',
    ('auto', 'slic-jax', 'slic', 'isec'),
    'Superpixel source: slic-jax (on the device, inside the frame step), slic (scikit-image) or '
    'isec on the host; auto = slic-jax in fast mode on an accelerator, slic otherwise.',
  )
  flags.DEFINE_integer('slic_segments', 1000, 'SLIC superpixels per frame (both SLICs).')
  flags.DEFINE_float('fps', frame_io.DEFAULT_FPS, 'Frame rate of the overlay for a frame folder.')
  flags.DEFINE_bool('resize_mask', False, 'Resize a mask of another size (nearest neighbour).')
  flags.DEFINE_bool('overwrite', False, 'Replace what --out holds.')
  flags.mark_flags_as_required(['video', 'mask', 'checkpoint', 'out'])


def main(argv) -> None:
  cli.check_no_arguments(argv)
  size = cli.size_flag(FLAGS.size, 'size')
  out = Path(FLAGS.out)
  check_output(out, FLAGS.overwrite)
  source = frame_io.VideoSource(FLAGS.video, FLAGS.fps)
  first_mask = read_first_mask(FLAGS.mask, source.size, FLAGS.resize_mask)
  try:
    variables = checkpoints.load_variables(FLAGS.checkpoint)
  except Exception as error:  # noqa: BLE001 - any failure to load is the same message
    raise ValueError(f'checkpoint {FLAGS.checkpoint} does not load: {error}') from None
  config = inference_defaults.get_config()
  config.mode, config.memory = FLAGS.mode, FLAGS.memory
  method = superpixels.resolve(FLAGS.superpixels, FLAGS.mode, evaluator.on_accelerator())
  engine = Propagator(
    variables, config, slic_segments=FLAGS.slic_segments if method == 'slic-jax' else 0
  )
  frames, fps = segment(source, first_mask, engine, out, size, FLAGS.slic_segments, method=method)
  print(f'{frames} frames at {fps:.2f} frames/s: {out / "masks"}, {out / "overlay.mp4"}')


def run() -> None:
  cli.run(main, define_flags, __name__)


if __name__ == '__main__':
  sys.exit(run())
