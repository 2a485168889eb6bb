"""Segments one's own video from a first-frame mask, in one command.

  python -m shls_jax.segment --video clip.mp4|FRAMES_DIR --mask first.png --checkpoint CKPT \
      --out OUT [--size H W] [--mode fast] [--fps N] [--resize-mask] [--overwrite]

Writes `OUT/masks/00000.png`, ... (indexed PNGs with the DAVIS palette, object ids as in the
mask, at the input's size) and `OUT/overlay.mp4` (masks blended over the frames, at the video's
frame rate, or `--fps` for a folder of frames). The video is streamed (`Propagator.stream`): a
long one needs no more memory than a short one. The mask is an indexed PNG of object ids or a
0/255 PNG of one object; the checkpoint a reference `.pth` file or an orbax folder of train.py.
`--size` (default: the input's) is the size frames are segmented at; masks are written at the
input's size. SLIC superpixels (`--segments`) are computed per frame at that size.
"""

import argparse
import collections
import shutil
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from shls_jax import checkpoints, superpixels
from shls_jax.inference import defaults as inference_defaults
from shls_jax.inference.engine import Propagator
from shls_jax.io import frames as frame_io
from shls_jax.io import masks as mask_io


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
        'pass --resize-mask to resize it (nearest neighbour)'
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
  segments: int = 1000,
  progress: bool = True,
) -> tuple[int, float]:
  """Writes the masks and the overlay video of `source`; returns (frames, frames per second).

  Args:
    source: the frames.
    first_mask: [H, W] uint8 ids at the source's size.
    engine: the propagation engine.
    out: output folder (created).
    size: (h, w) to segment at; None = the source's size.
    segments: SLIC superpixels per frame.
    progress: show a progress bar.
  """
  height, width = source.size
  work = tuple(size) if size else (height, width)
  masks_dir = out / 'masks'
  # A previous, longer run must not leave frames behind.
  shutil.rmtree(masks_dir, ignore_errors=True)
  masks_dir.mkdir(parents=True)
  writer = cv2.VideoWriter(
    str(out / 'overlay.mp4'), cv2.VideoWriter_fourcc(*'mp4v'), source.fps, (width, height)
  )
  # Frames read but not written yet (the engine reads one ahead), for their overlays.
  pending = collections.deque()

  def inputs():
    for frame in source:
      pending.append(frame)
      small = frame_io.resize_frame(frame, work)
      yield small, superpixels.compute(small, 'slic', n_segments=segments)

  start, count = time.perf_counter(), 0
  bar = tqdm(total=source.count, unit='frame', disable=not progress)
  try:
    for result in engine.stream(inputs(), mask_io.resize_ids(first_mask, work)):
      mask = first_mask if count == 0 else mask_io.resize_ids(result.mask, (height, width))
      mask_io.write_mask(masks_dir / f'{count:05d}.png', mask)
      writer.write(cv2.cvtColor(mask_io.overlay(pending.popleft(), mask), cv2.COLOR_RGB2BGR))
      count += 1
      bar.update()
      bar.set_postfix(fps=f'{count / (time.perf_counter() - start):.2f}')
  finally:
    bar.close()
    writer.release()
  return count, count / (time.perf_counter() - start)


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--video', required=True, help='a video file or a folder of frames')
  parser.add_argument('--mask', required=True, help='first-frame mask PNG')
  parser.add_argument('--checkpoint', required=True, help='reference .pth or orbax folder')
  parser.add_argument('--out', required=True, type=Path)
  parser.add_argument('--size', type=int, nargs=2, metavar=('H', 'W'), help='processing size')
  parser.add_argument('--mode', default='fast', choices=('fast', 'exact'))
  parser.add_argument('--memory', default='faiss', choices=('faiss', 'device'))
  parser.add_argument('--segments', type=int, default=1000, help='SLIC superpixels per frame')
  parser.add_argument(
    '--fps', type=float, default=frame_io.DEFAULT_FPS, help='for a folder of frames'
  )
  parser.add_argument('--resize-mask', action='store_true', help='resize a mask of another size')
  parser.add_argument('--overwrite', action='store_true', help='replace what OUT holds')
  args = parser.parse_args(argv)
  try:
    check_output(args.out, args.overwrite)
    source = frame_io.VideoSource(args.video, args.fps)
    first_mask = read_first_mask(args.mask, source.size, args.resize_mask)
    if args.size and min(args.size) < 1:
      raise ValueError(f'--size must be positive, got {args.size}')
    try:
      variables = checkpoints.load_variables(args.checkpoint)
    except Exception as error:  # noqa: BLE001 - any failure to load is the same message
      raise ValueError(f'checkpoint {args.checkpoint} does not load: {error}') from None
    config = inference_defaults.get_config()
    config.mode, config.memory = args.mode, args.memory
    frames, fps = segment(
      source, first_mask, Propagator(variables, config), args.out, args.size, args.segments
    )
  except (FileNotFoundError, FileExistsError, NotADirectoryError, ValueError) as error:
    raise SystemExit(f'error: {error}') from None
  print(f'{frames} frames at {fps:.2f} frames/s: {args.out / "masks"}, {args.out / "overlay.mp4"}')


if __name__ == '__main__':
  main(sys.argv[1:])
