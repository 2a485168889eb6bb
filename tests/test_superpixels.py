"""Superpixel entry point, SLIC, label-map PNG storage and the precompute tool."""

import json

import cv2
import numpy as np
import pytest

from shls_jax import superpixels
from shls_jax.data import davis
from shls_jax.io import frames as frame_io


def _assert_dense(labels, shape):
  assert labels.shape == shape and labels.dtype == np.int32
  np.testing.assert_array_equal(np.unique(labels), np.arange(1, labels.max() + 1))


@pytest.fixture(scope='module')
def rgb():
  """A smooth [60, 80, 3] float32 test image with a few colour regions."""
  yy, xx = np.mgrid[0:60, 0:80] / 80.0
  image = np.stack([xx, yy, 0.5 * (xx + yy)], axis=2)
  image[20:40, 30:60] = (0.9, 0.1, 0.2)
  return image.astype(np.float32)


def test_slic_dense_labels_and_segment_count(rgb):
  labels = superpixels.compute(rgb, 'slic')
  _assert_dense(labels, rgb.shape[:2])
  assert 100 <= labels.max() <= 400
  few = superpixels.compute(rgb, 'slic', n_segments=20)
  _assert_dense(few, rgb.shape[:2])
  assert few.max() < labels.max()


def test_slic_grey_rgba_and_uint8_forms(rgb):
  grey = rgb[:, :, 0]
  np.testing.assert_array_equal(
    superpixels.compute(grey, 'slic'),
    superpixels.compute(np.repeat(grey[:, :, None], 3, 2), 'slic'),
  )
  rgba = np.concatenate([rgb, np.ones_like(rgb[:, :, :1])], axis=2)
  np.testing.assert_array_equal(superpixels.compute(rgba, 'slic'), superpixels.compute(rgb, 'slic'))
  as_uint8 = np.round(rgb * 255).astype(np.uint8)
  np.testing.assert_array_equal(
    superpixels.compute(as_uint8, 'slic'),
    superpixels.compute(as_uint8.astype(np.float32) / 255, 'slic'),
  )


def test_compute_rejects_bad_method_and_images(rgb):
  with pytest.raises(ValueError, match='unknown superpixel method'):
    superpixels.compute(rgb, 'watershed')
  with pytest.raises(ValueError, match='shape'):
    superpixels.compute(np.zeros((2, 3, 4, 5)), 'slic')
  with pytest.raises(ValueError, match='empty'):
    superpixels.compute(np.zeros((0, 5, 3)), 'slic')
  with pytest.raises(ValueError, match='NaN'):
    superpixels.compute(np.full((4, 4, 3), np.nan), 'slic')


def test_dense_labels_renumbers_in_order():
  labels = np.array([[7, 7, 3], [0, 12, 3]])
  np.testing.assert_array_equal(superpixels.dense_labels(labels), [[3, 3, 2], [1, 4, 2]])
  with pytest.raises(ValueError, match='2-D integer'):
    superpixels.dense_labels(np.zeros((2, 2), np.float32))


def test_png_round_trip(tmp_path):
  rng = np.random.default_rng(0)
  labels = rng.integers(1, 1500, size=(31, 47)).astype(np.int32)
  labels[0, 0], labels[-1, -1] = 1, superpixels.label_io.MAX_LABEL
  path = superpixels.label_path(tmp_path, 'seq', '00003')
  assert path == tmp_path / 'seq' / '00003.png'
  superpixels.write_labels(path, labels)
  raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
  assert raw.dtype == np.uint16
  np.testing.assert_array_equal(raw, labels)
  np.testing.assert_array_equal(
    superpixels.read_labels(path, (31, 47)), superpixels.dense_labels(labels)
  )
  assert [p.name for p in path.parent.iterdir()] == ['00003.png']


def test_png_errors(tmp_path):
  path = tmp_path / 'a' / '00000.png'
  with pytest.raises(ValueError, match='16-bit'):
    superpixels.write_labels(path, np.full((2, 2), 70000, np.int32))
  with pytest.raises(ValueError, match='start at 1'):
    superpixels.write_labels(path, np.zeros((2, 2), np.int32))
  with pytest.raises(FileNotFoundError, match='does not exist'):
    superpixels.read_labels(path)
  superpixels.write_labels(path, np.ones((4, 5), np.int32))
  with pytest.raises(ValueError, match='expected 4x6'):
    superpixels.read_labels(path, (4, 6))
  cv2.imwrite(str(path), np.zeros((4, 5), np.uint16))
  with pytest.raises(ValueError, match='label 0'):
    superpixels.read_labels(path)
  path.write_bytes(b'not a png')
  with pytest.raises(ValueError, match='not a readable image'):
    superpixels.read_labels(path)


@pytest.fixture(scope='module')
def small_davis(davis_sample, tmp_path_factory):
  """A DAVIS-layout copy of two sample sequences, 3 frames each, downscaled to 96x160."""
  root = tmp_path_factory.mktemp('davis')
  names = ['blackswan', 'dog']
  for name in names:
    folder = root / 'JPEGImages' / '480p' / name
    folder.mkdir(parents=True)
    for frame in davis.frame_paths(davis_sample, name)[:3]:
      image = cv2.imread(str(frame), cv2.IMREAD_COLOR)
      cv2.imwrite(
        str(folder / frame.name), cv2.resize(image, (160, 96), interpolation=cv2.INTER_AREA)
      )
  (root / 'ImageSets' / '2017').mkdir(parents=True)
  (root / 'ImageSets' / '2017' / 'val.txt').write_text('\n'.join(names) + '\n')
  return root


def _maps(out):
  return sorted(p.relative_to(out).as_posix() for p in out.glob('*/*.png'))


TOOL = 'shls_jax.tools.superpixels'


def _refused(done, message: str) -> None:
  """A one-line error naming `message`, status 1, no traceback."""
  assert done.returncode == 1, done.stdout + done.stderr
  assert message in done.stderr and 'Traceback' not in done.stderr, done.stderr


def test_precompute_tool_writes_resumes_and_never_overwrites(small_davis, tmp_path, command):
  out = tmp_path / 'isec'
  args = ['--method', 'isec', '--davis_root', small_davis, '--out', out]
  done = command(TOOL, *args, '--split', 'val', '--max_frames', '2', '--workers', '2')
  assert done.returncode == 0, done.stderr
  assert _maps(out) == [
    'blackswan/00000.png',
    'blackswan/00001.png',
    'dog/00000.png',
    'dog/00001.png',
  ]
  assert json.loads((out / 'settings.json').read_text()) == {'method': 'isec', 'params': {}}
  for name in _maps(out):
    frame = small_davis / 'JPEGImages' / '480p' / name.replace('.png', '.jpg')
    expected = superpixels.compute(frame_io.read_frame(frame), 'isec')
    np.testing.assert_array_equal(superpixels.read_labels(out / name), expected)

  # Resume: existing maps are kept untouched, only the missing frames are computed.
  stamps = {p: (out / p).stat().st_mtime_ns for p in _maps(out)}
  done = command(TOOL, *args, '--sequences', 'blackswan,dog')
  assert '2 label maps written, 4 already present' in done.stdout, done.stderr
  assert len(_maps(out)) == 6
  assert all((out / p).stat().st_mtime_ns == t for p, t in stamps.items())

  # A map that does not fit its frame is reported, not silently replaced.
  bad = out / 'dog' / '00000.png'
  superpixels.write_labels(bad, np.ones((5, 5), np.int32))
  _refused(command(TOOL, *args, '--sequences', 'dog'), '--overwrite')
  assert superpixels.read_labels(bad).shape == (5, 5)
  assert command(TOOL, *args, '--sequences', 'dog', '--overwrite').returncode == 0
  assert superpixels.read_labels(bad).shape == (96, 160)

  # Another method's maps are never mixed into the folder.
  _refused(
    command(TOOL, '--method', 'slic', '--davis_root', small_davis, '--out', out), 'made with'
  )


def test_precompute_tool_split_file_and_slic(small_davis, tmp_path, command):
  split = tmp_path / 'mine.txt'
  split.write_text('dog\n')
  out = tmp_path / 'slic'
  done = command(
    TOOL,
    '--method=slic',
    '--davis_root',
    small_davis,
    '--out',
    out,
    '--split',
    split,
    '--max_frames=1',
    '--slic_segments=50',
  )
  assert done.returncode == 0, done.stderr
  assert _maps(out) == ['dog/00000.png']
  labels = superpixels.read_labels(out / 'dog' / '00000.png', (96, 160))
  assert 20 <= labels.max() <= 80


def test_precompute_tool_clear_errors(small_davis, tmp_path, command):
  out = tmp_path / 'o'
  nowhere = ['--method=isec', '--davis_root', tmp_path / 'nowhere', '--out', out]
  _refused(command(TOOL, *nowhere), 'not a directory')
  unknown = ['--method=isec', '--davis_root', small_davis, '--out', out, '--sequences=unknown']
  _refused(command(TOOL, *unknown), 'frame folder')
  # A SLIC setting with another method is a usage error (absl's usage text, status 1).
  done = command(
    TOOL, '--method=isec', '--davis_root', small_davis, '--out', out, '--slic_segments=10'
  )
  assert done.returncode == 1 and '--slic_segments only applies' in done.stderr
