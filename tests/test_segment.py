"""Tests of `shls-segment` on a generated clip: masks, overlay video, errors."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import jax
import numpy as np
import pytest

from shls_jax import checkpoints
from shls_jax.io import masks as mask_io
from shls_jax.model import shls

ROOT = Path(__file__).resolve().parents[1]
FRAMES, HEIGHT, WIDTH = 5, 48, 64


def _clip_frames() -> np.ndarray:
  """[T, H, W, 3] uint8 RGB: a red square moving right on grey."""
  frames = np.full((FRAMES, HEIGHT, WIDTH, 3), 110, np.uint8)
  for t in range(FRAMES):
    frames[t, 12:32, 10 + 3 * t : 30 + 3 * t] = (220, 40, 40)
  return frames


@pytest.fixture(scope='module')
def clip(tmp_path_factory):
  """(mp4 path, frames folder, indexed first mask, 0/255 first mask, orbax checkpoint)."""
  root = tmp_path_factory.mktemp('clip')
  frames = _clip_frames()
  video = root / 'clip.mp4'
  writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*'mp4v'), 10.0, (WIDTH, HEIGHT))
  folder = root / 'frames'
  folder.mkdir()
  for t, frame in enumerate(frames):
    bgr = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
    writer.write(bgr)
    cv2.imwrite(str(folder / f'{t:03d}.png'), bgr)
  writer.release()
  mask = np.zeros((HEIGHT, WIDTH), np.uint8)
  mask[12:32, 10:30] = 2  # object id 2, kept as given
  mask_io.write_mask(root / 'mask.png', mask)
  cv2.imwrite(str(root / 'binary.png'), (mask > 0).astype(np.uint8) * 255)
  ckpt = checkpoints.save_variables(root / 'ckpt', shls.init_variables(jax.random.PRNGKey(0)))
  return video, folder, root / 'mask.png', root / 'binary.png', ckpt


def _segment(*args) -> subprocess.CompletedProcess:
  return subprocess.run(
    [sys.executable, '-m', 'shls_jax.tools.segment', *map(str, args)],
    cwd=ROOT,
    env=dict(os.environ, JAX_PLATFORMS='cpu'),
    capture_output=True,
    text=True,
    timeout=600,
  )


def _video_frames(path: Path) -> int:
  capture = cv2.VideoCapture(str(path))
  count = 0
  while capture.read()[0]:
    count += 1
  capture.release()
  return count


def test_segment_writes_one_mask_per_frame_and_the_overlay(clip, tmp_path):
  video, folder, mask, binary, ckpt = clip
  common = ['--checkpoint', ckpt, '--slic_segments', '30']
  done = _segment('--video', video, '--mask', mask, '--out', tmp_path / 'a', *common)
  assert done.returncode == 0, done.stderr[-3000:]
  masks = sorted((tmp_path / 'a' / 'masks').glob('*.png'))
  assert [p.name for p in masks] == [f'{t:05d}.png' for t in range(FRAMES)]
  first = mask_io.read_indexed_png(masks[0])
  assert first.shape == (HEIGHT, WIDTH) and set(np.unique(first)) == {0, 2}
  assert set(np.unique(np.stack([mask_io.read_indexed_png(p) for p in masks]))) <= {0, 2}
  assert _video_frames(tmp_path / 'a' / 'overlay.mp4') == FRAMES
  assert 'frames/s' in done.stdout
  # A folder of frames, a 0/255 mask, a processing size below the input's.
  done = _segment(
    '--video', folder, '--mask', binary, '--out', tmp_path / 'b', '--size=24,32', *common
  )
  assert done.returncode == 0, done.stderr[-3000:]
  masks = sorted((tmp_path / 'b' / 'masks').glob('*.png'))
  assert len(masks) == FRAMES and mask_io.read_indexed_png(masks[-1]).shape == (HEIGHT, WIDTH)
  assert _video_frames(tmp_path / 'b' / 'overlay.mp4') == FRAMES
  # Fast mode's device step with the JAX SLIC: the same files.
  done = _segment(
    '--video', video, '--mask', mask, '--out', tmp_path / 'c', '--memory', 'device',
    '--superpixels', 'slic-jax', *common
  )  # fmt: skip
  assert done.returncode == 0, done.stderr[-3000:]
  masks = sorted((tmp_path / 'c' / 'masks').glob('*.png'))
  assert len(masks) == FRAMES and _video_frames(tmp_path / 'c' / 'overlay.mp4') == FRAMES
  assert set(np.unique(np.stack([mask_io.read_indexed_png(p) for p in masks]))) <= {0, 2}
  # Nothing is replaced without --overwrite.
  again = _segment('--video', folder, '--mask', binary, '--out', tmp_path / 'b', *common)
  assert again.returncode != 0 and '--overwrite' in again.stderr


def _masks(out: Path) -> np.ndarray:
  paths = sorted((out / 'masks').glob('*.png'))
  assert [p.name for p in paths] == [f'{t:05d}.png' for t in range(FRAMES)]
  assert _video_frames(out / 'overlay.mp4') == FRAMES
  assert sorted(p.name for p in out.iterdir()) == ['masks', 'overlay.mp4']  # no .partial left
  return np.stack([mask_io.read_indexed_png(p) for p in paths])


def test_segment_propagates_both_ways_from_any_annotated_frames(clip, tmp_path):
  video, folder, mask, _, ckpt = clip
  common = ['--checkpoint', ckpt, '--slic_segments', '30']
  square = _clip_frames()[2].any(-1) & (_clip_frames()[2][..., 1] == 40)
  given = np.where(square, 2, 0).astype(np.uint8)
  mask_io.write_mask(tmp_path / 'k2.png', given)
  done = _segment(
    '--video', video, '--mask', tmp_path / 'k2.png', '--mask_frame', '2', '--out', tmp_path / 'a',
    *common
  )  # fmt: skip
  assert done.returncode == 0, done.stderr[-3000:]
  masks = _masks(tmp_path / 'a')
  np.testing.assert_array_equal(masks[2], given)
  assert set(np.unique(masks)) <= {0, 2}
  # Several annotated frames: 1 starts (both ways), 3 adds object 5 from its frame on.
  annotations = tmp_path / 'annotations'
  annotations.mkdir()
  shutil.copy(mask, annotations / '001.png')  # named as the frame file 001.png
  added = mask_io.read_indexed_png(mask)
  added[40:46, 50:60] = 5
  mask_io.write_mask(annotations / '003.png', added)
  done = _segment('--video', folder, '--masks', annotations, '--out', tmp_path / 'b', *common)
  assert done.returncode == 0, done.stderr[-3000:]
  masks = _masks(tmp_path / 'b')
  np.testing.assert_array_equal(masks[1], mask_io.read_indexed_png(mask))
  assert not np.isin(5, masks[:3]) and np.isin(5, masks[3])
  # No annotation at all: frame 0's salient object, the red square, as object 1.
  done = _segment('--video', video, '--mask', 'auto', '--out', tmp_path / 'c', *common)
  assert done.returncode == 0, done.stderr[-3000:]
  first = _masks(tmp_path / 'c')[0]
  square0 = mask_io.read_indexed_png(mask) > 0
  assert set(np.unique(first)) == {0, 1}
  assert (first[square0] == 1).mean() > 0.8 and (first[~square0] == 0).mean() > 0.9


def test_segment_errors_are_one_line(clip, tmp_path):
  video, folder, mask, _, ckpt = clip
  (tmp_path / 'bad.mp4').write_bytes(b'not a video')
  small = tmp_path / 'small.png'
  mask_io.write_mask(small, np.ones((10, 10), np.uint8))
  empty = tmp_path / 'empty.png'
  mask_io.write_mask(empty, np.zeros((HEIGHT, WIDTH), np.uint8))
  (tmp_path / 'broken').mkdir()
  names = tmp_path / 'names'
  names.mkdir()
  shutil.copy(mask, names / 'first.png')
  cases = [
    (['--video', tmp_path / 'bad.mp4', '--mask', mask, '--checkpoint', ckpt], 'cannot read video'),
    (['--video', tmp_path / 'none.mp4', '--mask', mask, '--checkpoint', ckpt], 'does not exist'),
    (['--video', video, '--mask', small, '--checkpoint', ckpt], '--resize_mask'),
    (['--video', video, '--mask', empty, '--checkpoint', ckpt], 'holds no object'),
    (['--video', video, '--mask', mask, '--checkpoint', tmp_path / 'broken'], 'does not load'),
    (['--video', folder, '--mask', mask, '--mask_frame', '9', '--checkpoint', ckpt], 'no frame 9'),
    (['--video', folder, '--masks', tmp_path / 'broken', '--checkpoint', ckpt], 'holds no .png'),
    (['--video', folder, '--masks', names, '--checkpoint', ckpt], 'is named as no frame'),
  ]
  for args, message in cases:
    done = _segment(*args, '--out', tmp_path / 'out')
    assert done.returncode != 0 and message in done.stderr, (message, done.stderr[-2000:])
    assert 'Traceback' not in done.stderr
