r"""Segments one's own video from annotated frames, in one command.

  shls-segment --video clip.mp4|FRAMES_DIR --checkpoint CKPT --out OUT \
      (--mask first.png [--mask_frame K] | --mask auto [--mask_frame K] | --masks DIR) \
      [--size H,W] [--mode fast] [--memory device] [--superpixels auto] [--fps N] \
      [--resize_mask] [--overwrite]

Writes `OUT/masks/00000.png`, ... (indexed PNGs with the DAVIS palette, object ids as in the
annotations, at the input's size, one per frame) and `OUT/overlay.mp4` (masks blended over the
frames, at the video's frame rate, or `--fps` for a folder of frames). Both are written under
temporary names (`masks.partial/`, `overlay.partial.mp4`) and renamed when every frame is done:
an interrupted run never leaves what looks like a finished one.

Annotations: `--mask` is an indexed PNG of object ids or a 0/255 PNG of one object, for frame
`--mask_frame` (default 0); `--mask auto` takes that frame's built-in salient object
(`saliency.salient_object`) as object 1, with no annotation at all. `--masks DIR` holds several
annotated frames, each PNG named as its frame (the frame file's stem for a folder of frames, or
the frame index, e.g. `00012.png`). The earliest annotated frame K starts the propagation:
backward from K to frame 0 (frames K, K-1, ..., 0 through the same engine) and forward from K to
the end, where each later annotation replaces the propagated mask of its objects from its frame
on and adds its new objects (as YouTube-VOS objects join). The backward pass holds frames 0..K
at the working size in memory; the forward pass is streamed (`Propagator.stream`): a long video
needs no more memory than a short one.

The checkpoint is a reference `.pth` file or an orbax folder of train.py. `--size` (default: the
input's) is the size frames are segmented at; masks are written at the input's size. Superpixels
(`--superpixels`, `--slic_segments`) are computed per frame at that size: by the JAX SLIC inside
the frame step in fast mode on an accelerator, by scikit-image's SLIC (on worker threads ahead of
the engine) in exact mode and on a CPU. Fast mode with `--memory device` runs each frame as one
device step (`inference.frame_step`).
"""

import collections
import itertools
import os
import shutil
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from absl import flags
from tqdm import tqdm

from shls_jax import checkpoints, superpixels
from shls_jax.data import saliency
from shls_jax.evaluation import evaluator
from shls_jax.inference import defaults as inference_defaults
from shls_jax.inference.engine import Propagator
from shls_jax.io import frames as frame_io
from shls_jax.io import masks as mask_io
from shls_jax.io import overlap
from shls_jax.memory import interface
from shls_jax.tools import cli

FLAGS = flags.FLAGS
MASKS_DIR = 'masks'
OVERLAY_FILE = 'overlay.mp4'


def read_annotation(path, size: tuple[int, int], resize: bool) -> np.ndarray:
  """[H, W] uint8 object ids of an annotation PNG at the frames' `size`.

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


def annotated_frames(folder, source: frame_io.VideoSource, resize: bool) -> dict[int, np.ndarray]:
  """{frame index: [H, W] uint8 ids} of a folder of PNGs named as their frames (see the module
  docstring).

  Raises:
    FileNotFoundError: a missing folder, or one without PNGs.
    ValueError: a PNG named as no frame, and the errors of `read_annotation`.
  """
  folder = Path(folder)
  if not folder.is_dir():
    raise FileNotFoundError(f'annotation folder {folder} does not exist')
  paths = sorted(p for p in folder.iterdir() if p.suffix.lower() == '.png')
  if not paths:
    raise FileNotFoundError(f'annotation folder {folder} holds no .png')
  stems = {p.stem: t for t, p in enumerate(source.files)} if source.files is not None else {}
  annotations = {}
  for path in paths:
    index = stems.get(path.stem)
    if index is None and path.stem.isdigit():
      index = int(path.stem)
    if index is None or (source.count and index >= source.count):
      raise ValueError(
        f'annotation {path} is named as no frame of {source.path} '
        f'({source.count} frames, named by index or by frame file)'
      )
    annotations[index] = read_annotation(path, source.size, resize)
  return annotations


def frame_at(source: frame_io.VideoSource, index: int) -> np.ndarray:
  """[H, W, 3] uint8 RGB frame `index` of `source`.

  Raises:
    ValueError: the video has no such frame.
  """
  frame = next(itertools.islice(source, index, None), None)
  if frame is None:
    raise ValueError(f'{source.path} has no frame {index}')
  return frame


def auto_annotation(source: frame_io.VideoSource, index: int) -> dict[int, np.ndarray]:
  """{index: the built-in salient object of frame `index` as object 1}.

  Raises:
    ValueError: nothing salient in that frame.
  """
  mask = saliency.salient_object(frame_at(source, index))
  if not mask.any():
    raise ValueError(
      f'no salient object in frame {index} of {source.path}: annotate it (shls-annotate)'
    )
  return {index: mask}


def check_output(out: Path, overwrite: bool) -> None:
  """Refuses an output folder holding anything but what an interrupted run left (`.partial`
  names), unless `overwrite`."""
  if out.exists() and not out.is_dir():
    raise NotADirectoryError(f'output {out} is a file')
  if out.is_dir() and any('.partial' not in p.name for p in out.iterdir()) and not overwrite:
    raise FileExistsError(f'output folder {out} is not empty: pass --overwrite to replace it')


def segment(
  source: frame_io.VideoSource,
  annotations: dict[int, np.ndarray],
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
    annotations: {frame index: [H, W] uint8 ids at the source's size}, at least one.
    engine: the propagation engine (with `slic_segments` for 'slic-jax').
    out: output folder (created); `masks/` and `overlay.mp4` there are replaced at the end.
    size: (h, w) to segment at; None = the source's size.
    slic_segments: SLIC superpixels per frame (host 'slic').
    progress: show a progress bar.
    method: 'slic-jax' (computed by the engine), 'slic' or 'isec' (on the host).

  Raises:
    ValueError: an annotated frame past the end of the video.
  """
  height, width = source.size
  work = tuple(size) if size else (height, width)
  start = min(annotations)
  masks_dir = out / f'{MASKS_DIR}.partial'
  overlay_path = out / f'overlay.partial{Path(OVERLAY_FILE).suffix}'
  shutil.rmtree(masks_dir, ignore_errors=True)
  masks_dir.mkdir(parents=True)
  video = cv2.VideoWriter(
    str(overlay_path), cv2.VideoWriter_fourcc(*'mp4v'), source.fps, (width, height)
  )

  def with_superpixels(small):
    if method == 'slic-jax':
      return small, None
    params = {'n_segments': slic_segments} if method == 'slic' else {}
    return small, superpixels.compute(small, method, **params)

  def propagate(frames, first, later):
    """Masks [H, W] at the source's size, one per frame of `frames` (iterable of frames at the
    working size), the first being `first`'s propagation."""
    inputs = overlap.ordered_map(with_superpixels, overlap.prefetch(frames))
    for result in engine.stream(inputs, mask_io.resize_ids(first, work), later):
      yield mask_io.resize_ids(result.mask, (height, width))

  def write(index, frame, mask):
    if mask is None:  # written by the backward pass
      mask = mask_io.read_indexed_png(masks_dir / f'{index:05d}.png')
    else:
      mask_io.write_mask(masks_dir / f'{index:05d}.png', mask)
    video.write(cv2.cvtColor(mask_io.overlay(frame, mask), cv2.COLOR_RGB2BGR))

  total = source.count + start if source.count else None
  bar = tqdm(total=total, unit='frame', disable=not progress)
  clock, count = time.perf_counter(), 0

  def done_one():
    nonlocal count
    count += 1
    bar.update()
    bar.set_postfix(fps=f'{count / (time.perf_counter() - clock):.2f}')

  try:
    with overlap.Writer() as writer:
      if start > 0:
        head = [frame_io.resize_frame(f, work) for f in itertools.islice(source, start + 1)]
        if len(head) <= start:
          raise ValueError(f'annotated frame {start} is past the end of {source.path}')
        backward = propagate(reversed(head), annotations[start], None)
        next(backward)  # frame `start` is written with the forward pass
        for index, mask in zip(range(start - 1, -1, -1), backward):
          writer.submit(mask_io.write_mask, masks_dir / f'{index:05d}.png', mask)
          done_one()
        del head
      frames = iter(source)
      for index, frame in zip(range(start), frames):
        writer.submit(write, index, frame, None)
      # Frames read but not written yet (the engine reads ahead), for their overlays.
      pending = collections.deque()

      def read():
        for frame in frames:
          pending.append(frame)
          yield frame_io.resize_frame(frame, work)

      later = {t - start: mask_io.resize_ids(m, work) for t, m in annotations.items() if t > start}
      index = start
      for index, mask in enumerate(propagate(read(), annotations[start], later), start):
        given = annotations[start] if index == start else mask
        writer.submit(write, index, pending.popleft(), given)
        done_one()
      if max(annotations) > index:
        raise ValueError(f'annotated frame {max(annotations)} is past the end of {source.path}')
  finally:
    bar.close()
    video.release()
  for name, partial in ((MASKS_DIR, masks_dir), (OVERLAY_FILE, overlay_path)):
    final = out / name
    if final.is_dir():
      shutil.rmtree(final)
    os.replace(partial, final)
  return count, count / (time.perf_counter() - clock)


def build_engine(
  checkpoint, mode: str = 'fast', memory: str = 'faiss', spx: str = 'auto', slic_segments=1000
) -> tuple[Propagator, str]:
  """(engine, superpixel method) of the command's settings (see `define_flags`).

  Raises:
    ValueError: the checkpoint does not load.
  """
  checkpoints.quiet_orbax_logging()
  try:
    variables = checkpoints.load_variables(checkpoint)
  except Exception as error:  # noqa: BLE001 - any failure to load is the same message
    raise ValueError(f'checkpoint {checkpoint} does not load: {error}') from None
  config = inference_defaults.get_config()
  config.mode, config.memory = mode, memory
  method = superpixels.resolve(spx, mode, evaluator.on_accelerator())
  engine = Propagator(variables, config, slic_segments=slic_segments if method == 'slic-jax' else 0)
  return engine, method


def define_flags() -> None:
  flags.DEFINE_string('video', None, 'A video file or a folder of frames.')
  flags.DEFINE_string(
    'mask', None, "Mask PNG of frame --mask_frame (indexed ids, or 0/255), or 'auto' (salient)."
  )
  flags.DEFINE_integer('mask_frame', 0, 'Frame index that --mask annotates.', lower_bound=0)
  flags.DEFINE_string('masks', None, 'Folder of annotated frames, PNGs named as their frames.')
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
  flags.mark_flags_as_required(['video', 'checkpoint', 'out'])
  flags.mark_flags_as_mutual_exclusive(['mask', 'masks'], required=True)


def main(argv) -> None:
  cli.check_no_arguments(argv)
  size = cli.size_flag(FLAGS.size, 'size')
  out = Path(FLAGS.out)
  check_output(out, FLAGS.overwrite)
  source = frame_io.VideoSource(FLAGS.video, FLAGS.fps)
  if FLAGS.masks:
    annotations = annotated_frames(FLAGS.masks, source, FLAGS.resize_mask)
  elif FLAGS.mask == 'auto':
    annotations = auto_annotation(source, FLAGS.mask_frame)
  else:
    annotations = {FLAGS.mask_frame: read_annotation(FLAGS.mask, source.size, FLAGS.resize_mask)}
  last = max(annotations)
  if source.count and last >= source.count:
    raise ValueError(f'{source.path} has no frame {last} (it has {source.count})')
  engine, method = build_engine(
    FLAGS.checkpoint, FLAGS.mode, FLAGS.memory, FLAGS.superpixels, FLAGS.slic_segments
  )
  frames, fps = segment(source, annotations, engine, out, size, FLAGS.slic_segments, method=method)
  print(f'{frames} frames at {fps:.2f} frames/s: {out / MASKS_DIR}, {out / OVERLAY_FILE}')


def run() -> None:
  cli.run(main, define_flags, __name__)


if __name__ == '__main__':
  sys.exit(run())
