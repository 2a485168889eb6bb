"""Tests of the YouTube-VOS reader (`shls_jax.data.youtube_vos`) and evaluator on generated splits:
the frames written are meta.json's, a late object's annotation is its first frame's output,
non-contiguous ids and the palette are kept, the zip's tree, the all-frames option, and errors."""

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from configs import youtube_vos as youtube_config
from shls_jax.data import youtube_vos
from shls_jax.io import masks as mask_io

ROOT = Path(__file__).resolve().parents[1]
SIZE = (48, 64)
# Every 5th frame, as the 6 fps release names them.
STEP = 5
# A palette other than DAVIS', so that keeping the annotation's palette shows.
PALETTE = np.roll(mask_io.palette(), 1, axis=1)


def _frame(rng, t: int) -> np.ndarray:
  return rng.integers(0, 255, SIZE + (3,), dtype=np.uint8)


def _write_annotation(path: Path, ids: np.ndarray) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  image = Image.fromarray(ids.astype(np.uint8), mode='P')
  image.putpalette(PALETTE.ravel().tolist())
  image.save(path)


def _box(top, left, height=10, width=12) -> np.ndarray:
  mask = np.zeros(SIZE, bool)
  mask[top : top + height, left : left + width] = True
  return mask


def write_split(root: Path, all_frames: bool = False) -> dict:
  """Two videos under `root/valid`: 'late' (object 1 from frame 0, object 2 from the third listed
  frame) and 'gaps' (ids 1 and 3 from frame 0); with `all_frames`, `root/valid_all_frames` too.
  Returns {video: {frame name: full annotation ids}} of what was drawn."""
  rng = np.random.default_rng(0)
  drawn = {}
  videos = {'late': ({1: 0, 2: 2}, 6), 'gaps': ({1: 0, 3: 0}, 5)}
  meta = {'videos': {}}
  for video, (first_frames, count) in videos.items():
    names = [f'{t * STEP:05d}' for t in range(count)]
    drawn[video] = {}
    for t, name in enumerate(names):
      ids = np.zeros(SIZE, np.uint8)
      ids[_box(5 + t, 4 + 2 * t)] = min(first_frames)
      for obj in first_frames:
        if obj != min(first_frames) and t >= first_frames[obj]:
          ids[_box(30, 40 - t, 8, 8)] = obj
      drawn[video][name] = ids
      folder = root / 'valid' / 'JPEGImages' / video
      folder.mkdir(parents=True, exist_ok=True)
      cv2.imwrite(str(folder / f'{name}.jpg'), _frame(rng, t))
      if all_frames:
        # The all-frames release: the listed frames and the 4 between each pair.
        for extra in range(STEP if t < count - 1 else 1):
          out = root / 'valid_all_frames' / 'JPEGImages' / video / f'{t * STEP + extra:05d}.jpg'
          out.parent.mkdir(parents=True, exist_ok=True)
          cv2.imwrite(str(out), _frame(rng, t))
    for t in sorted(set(first_frames.values())):
      # The annotation of a frame holds the objects that first appear there.
      new = [obj for obj, first in first_frames.items() if first == t]
      ids = np.where(np.isin(drawn[video][names[t]], new), drawn[video][names[t]], 0)
      _write_annotation(root / 'valid' / 'Annotations' / video / f'{names[t]}.png', ids)
    meta['videos'][video] = {
      'objects': {str(obj): {'frames': names[first:]} for obj, first in first_frames.items()}
    }
  (root / 'valid' / 'meta.json').write_text(json.dumps(meta))
  return drawn


def _config(root: Path, **eval_overrides):
  config = youtube_config.get_config()
  config.eval.youtube_root = str(root)
  config.eval.superpixels.slic_segments = 40
  config.inference.superpixel_capacity = 64
  config.eval.update(eval_overrides)
  return config


# -------------------------------------------------------------------------------------- reader


def test_reader_gives_frames_first_frames_and_only_new_objects(tmp_path):
  write_split(tmp_path)
  folder = youtube_vos.split_folder(tmp_path)
  meta = youtube_vos.load_meta(folder)
  assert youtube_vos.select_videos(folder, meta) == ['gaps', 'late']
  video = youtube_vos.load_video(folder, 'late', meta['late'])
  assert video.frame_names == ['00000', '00005', '00010', '00015', '00020', '00025']
  assert video.output_frames == tuple(video.frame_names)
  assert video.first_frames == {1: '00000', 2: '00010'}
  given = youtube_vos.given_masks(video)
  assert sorted(given) == [0, 2]
  assert set(np.unique(given[0])) == {0, 1} and set(np.unique(given[2])) == {0, 2}
  np.testing.assert_array_equal(youtube_vos.video_palette(video), PALETTE)


@pytest.mark.parametrize(
  'damage, error, match',
  [
    (lambda r: (r / 'valid' / 'meta.json').unlink(), FileNotFoundError, 'meta.json'),
    (lambda r: (r / 'valid' / 'meta.json').write_text('{"videos": 3}'), ValueError, 'meta file'),
    (
      lambda r: (r / 'valid' / 'JPEGImages' / 'late' / '00015.jpg').unlink(),
      FileNotFoundError,
      'listed frames',
    ),
    (
      lambda r: (r / 'valid' / 'Annotations' / 'late' / '00010.png').unlink(),
      FileNotFoundError,
      'first-frame annotations',
    ),
    (
      lambda r: _write_annotation(
        r / 'valid' / 'Annotations' / 'late' / '00010.png', np.zeros(SIZE)
      ),
      ValueError,
      r'objects \[2\] are not in their first frame',
    ),
  ],
)
def test_bad_splits_are_clear_errors(tmp_path, damage, error, match):
  write_split(tmp_path)
  damage(tmp_path)
  with pytest.raises(error, match=match):
    folder = youtube_vos.split_folder(tmp_path)
    meta = youtube_vos.load_meta(folder)
    youtube_vos.given_masks(youtube_vos.load_video(folder, 'late', meta['late']))


# ----------------------------------------------------------------------------------- evaluator


def _random_weights():
  import jax

  from shls_jax.model import shls

  return shls.init_variables(jax.random.PRNGKey(0))


@pytest.fixture(scope='module')
def segmented(tmp_path_factory):
  from shls_jax.evaluation import youtube_evaluator

  root = tmp_path_factory.mktemp('ytvos')
  drawn = write_split(root)
  results = root / 'results'
  youtube_evaluator.evaluate(_config(root), results, submission=True)
  return drawn, results


def test_written_frames_are_meta_jsons(segmented):
  drawn, results = segmented
  for video, frames in drawn.items():
    written = sorted(p.stem for p in (results / 'Annotations' / video).glob('*.png'))
    assert written == sorted(frames)


def test_late_object_annotation_is_the_output_of_its_first_frame(segmented):
  drawn, results = segmented
  out = mask_io.read_indexed_png(results / 'Annotations' / 'late' / '00010.png')
  late = drawn['late']['00010'] == 2
  assert np.all(out[late] == 2)
  first = mask_io.read_indexed_png(results / 'Annotations' / 'late' / '00000.png')
  np.testing.assert_array_equal(first, drawn['late']['00000'])
  # Before its first frame the late object is nowhere.
  assert not np.any(mask_io.read_indexed_png(results / 'Annotations' / 'late' / '00005.png') == 2)


def test_non_contiguous_ids_and_the_palette_are_kept(segmented):
  drawn, results = segmented
  pngs = sorted((results / 'Annotations' / 'gaps').glob('*.png'))
  ids = set()
  for png in pngs:
    with Image.open(png) as image:
      assert image.mode == 'P' and image.size == SIZE[::-1]
      np.testing.assert_array_equal(np.reshape(image.getpalette()[:768], (256, 3)), PALETTE)
      ids |= set(np.unique(np.array(image)).tolist())
  assert ids <= {0, 1, 3}
  np.testing.assert_array_equal(mask_io.read_indexed_png(pngs[0]), drawn['gaps']['00000'])


def test_zip_holds_annotations_of_every_video(segmented):
  drawn, results = segmented
  with zipfile.ZipFile(results / 'submission-valid.zip') as archive:
    names = sorted(archive.namelist())
  expected = sorted(f'Annotations/{v}/{f}.png' for v, frames in drawn.items() for f in frames)
  assert names == expected


def test_all_frames_are_segmented_and_the_listed_ones_written(tmp_path):
  from shls_jax.evaluation import youtube_evaluator

  drawn = write_split(tmp_path, all_frames=True)
  config = _config(tmp_path, all_frames=True, videos='late')
  youtube = youtube_evaluator.YouTubeEvaluator(config, tmp_path / 'results', progress=False)
  assert len(youtube.videos[0].frames) == 26
  youtube.run(_random_weights())
  written = sorted(p.stem for p in (tmp_path / 'results' / 'Annotations' / 'late').glob('*.png'))
  assert written == sorted(drawn['late'])
  write_split(tmp_path / 'six-fps-only')
  with pytest.raises(FileNotFoundError, match='all-frames release'):
    youtube_evaluator.YouTubeEvaluator(
      _config(tmp_path / 'six-fps-only', all_frames=True), tmp_path / 'other'
    )


def test_cli_needs_no_davis_root_and_refuses_score_only(tmp_path):
  write_split(tmp_path)
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  base = [sys.executable, str(ROOT / 'evaluate.py'), '--config', 'configs/youtube_vos.py']
  run = lambda *args: subprocess.run(
    [*base, *map(str, args)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
  )
  done = run(
    '--youtube_root',
    tmp_path,
    '--results_dir',
    tmp_path / 'results',
    '--sequences',
    'gaps',
    '--zip',
    '--config.eval.superpixels.slic_segments=40',
    '--config.inference.superpixel_capacity=64',
  )
  assert done.returncode == 0, done.stderr[-3000:]
  assert 'segmented 1 videos' in done.stdout
  assert (tmp_path / 'results' / 'submission-valid.zip').is_file()
  missing = run('--results_dir', tmp_path / 'r2')
  assert missing.returncode != 0 and '--youtube_root is required' in missing.stderr
  scored = run('--youtube_root', tmp_path, '--results_dir', tmp_path / 'r3', '--score_only')
  assert scored.returncode != 0 and 'server' in scored.stderr
