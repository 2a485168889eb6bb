"""Tests of the DAVIS reader: layouts, mask conventions, resizing and error messages."""

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from shls_jax.data import davis
from shls_jax.io import frames as frame_io
from shls_jax.io import masks as mask_io


def _write_png(path: Path, values: np.ndarray, mode: str = 'P') -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  image = Image.fromarray(values.astype(np.uint8), mode=mode)
  if mode == 'P':
    # Without a palette, PIL may renumber the indices when saving.
    image.putpalette(np.repeat(np.arange(256), 3).tolist())
  image.save(path)


def _write_jpg(path: Path, rgb: np.ndarray) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def _make_sequence(root: Path, name: str, masks: list, size=(24, 32), mode='P'):
  """Writes a sequence of len(masks) frames; masks[i] None leaves frame i unannotated."""
  for i, mask in enumerate(masks):
    _write_jpg(
      root / 'JPEGImages' / '480p' / name / f'{i:05d}.jpg', np.full((*size, 3), 90, np.uint8)
    )
    if mask is not None:
      _write_png(root / 'Annotations' / '480p' / name / f'{i:05d}.png', mask, mode)


def _two_objects(size=(24, 32)) -> np.ndarray:
  mask = np.zeros(size, np.uint8)
  mask[2:8, 2:10] = 1
  mask[12:20, 14:30] = 2
  mask[0, :] = 255  # void
  return mask


def test_sample_sequences(davis_sample):
  assert davis.list_sequences(davis_sample) == [
    'blackswan',
    'bmx-trees',
    'car-shadow',
    'dog',
    'libby',
  ]
  assert davis.list_sequences(davis_sample, 'val') == davis.list_sequences(davis_sample)
  paths = davis.frame_paths(davis_sample, 'dog')
  assert len(paths) == 60 and paths[0].name == '00000.jpg' and paths == sorted(paths)
  seq = davis.load_sequence(davis_sample, 'car-shadow')
  assert (seq.name, len(seq.frames), seq.object_ids, seq.binary_255) == (
    'car-shadow',
    40,
    (1,),
    False,
  )
  assert seq.frame_names[:2] == ['00000', '00001']
  masks = davis.load_masks(seq, [0, 39])
  assert masks.shape == (2, 480, 854) and masks.dtype == np.uint8
  assert set(np.unique(masks)) == {0, 1}
  frame = frame_io.read_frame(seq.frames[0], size=(240, 427))
  assert frame.shape == (240, 427, 3) and frame.dtype == np.uint8


def test_multi_object_masks(tmp_path):
  first = _two_objects()
  _make_sequence(tmp_path, 'seq', [first, first, None])
  seq = davis.load_sequence(tmp_path, 'seq')
  assert seq.object_ids == (1, 2) and not seq.binary_255
  assert seq.annotations[2] is None
  masks = davis.load_masks(seq, [0, 1])
  np.testing.assert_array_equal(masks[0], first)  # ids and void kept as stored
  merged = davis.load_masks(seq, [0], single_object=True)[0]
  np.testing.assert_array_equal(merged, np.where(first == 255, 255, first > 0))
  small = davis.load_masks(seq, [0], size=(12, 16))[0]
  np.testing.assert_array_equal(small, cv2.resize(first, (16, 12), interpolation=cv2.INTER_NEAREST))
  assert set(np.unique(small)) <= {0, 1, 2, 255}
  with pytest.raises(FileNotFoundError, match='00002.jpg has no annotation'):
    davis.load_masks(seq)
  assert davis.load_frames(seq).shape == (3, 24, 32, 3)


def test_davis2016_release_layout(tmp_path):
  mask = np.zeros((24, 32), np.uint8)
  mask[5:15, 5:20] = 255
  _make_sequence(tmp_path, 'bear', [mask, mask], mode='L')
  _make_sequence(tmp_path, 'camel', [mask, mask], mode='L')
  split = tmp_path / 'ImageSets' / '480p' / 'val.txt'
  split.parent.mkdir(parents=True)
  split.write_text(
    ''.join(
      f'/JPEGImages/480p/{s}/0000{i}.jpg /Annotations/480p/{s}/0000{i}.png\n'
      for s in ('camel', 'bear')
      for i in range(2)
    )
  )
  assert davis.list_sequences(tmp_path, 'val') == ['camel', 'bear']
  seq = davis.load_sequence(tmp_path, 'bear')
  assert seq.binary_255 and seq.object_ids == (1,)
  np.testing.assert_array_equal(davis.load_masks(seq, [1])[0], mask // 255)


def test_read_frame_is_rgb(tmp_path):
  rgb = np.zeros((16, 16, 3), np.uint8)
  rgb[..., 0] = 250
  _write_jpg(tmp_path / 'red.jpg', rgb)
  frame = frame_io.read_frame(tmp_path / 'red.jpg')
  assert frame[..., 0].min() > 200 and frame[..., 1:].max() < 50


def test_reader_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match='is not a directory'):
    davis.list_sequences(tmp_path / 'nowhere')
  with pytest.raises(FileNotFoundError, match='no JPEGImages'):
    davis.list_sequences(tmp_path)
  _make_sequence(tmp_path, 'seq', [_two_objects(), _two_objects()])
  with pytest.raises(FileNotFoundError, match="split 'val' not found"):
    davis.list_sequences(tmp_path, 'val')
  with pytest.raises(FileNotFoundError, match="sequence 'other' has no frame folder"):
    davis.frame_paths(tmp_path, 'other')
  with pytest.raises(FileNotFoundError, match='first frame 00000.jpg has no mask'):
    _make_sequence(tmp_path, 'late', [None, _two_objects()])
    davis.load_sequence(tmp_path, 'late')
  with pytest.raises(ValueError, match=r'is \(24, 32\) but its mask is \(12, 16\)'):
    _make_sequence(tmp_path, 'sized', [_two_objects((12, 16))], size=(24, 32))
    davis.load_sequence(tmp_path, 'sized')
  _make_sequence(tmp_path, 'later_size', [_two_objects(), _two_objects((12, 16))])
  seq = davis.load_sequence(tmp_path, 'later_size')
  with pytest.raises(ValueError, match=r'00001.png is \(12, 16\) but its frame is \(24, 32\)'):
    davis.load_masks(seq)
  rgb_mask = tmp_path / 'Annotations' / '480p' / 'rgb' / '00000.png'
  _make_sequence(tmp_path, 'rgb', [None])
  rgb_mask.parent.mkdir(parents=True)
  Image.fromarray(np.zeros((24, 32, 3), np.uint8)).save(rgb_mask)
  with pytest.raises(ValueError, match="mode 'RGB'"):
    davis.load_sequence(tmp_path, 'rgb')


def test_mask_png_reading_equals_pil(tmp_path):
  rng = np.random.default_rng(0)
  values = rng.integers(0, 6, size=(37, 53)).astype(np.uint8)
  values[5:20, 10:40] = 255
  written = {}
  for mode in ('P', 'L'):
    written[mode] = tmp_path / f'{mode}.png'
    _write_png(written[mode], values, mode)
  # OpenCV filters its rows (PIL leaves them unfiltered): read through PIL instead.
  written['filtered'] = tmp_path / 'filtered.png'
  cv2.imwrite(str(written['filtered']), values)
  written['interlaced'] = tmp_path / 'interlaced.png'
  Image.fromarray(values, 'L').save(written['interlaced'], interlace=1)
  for name, path in written.items():
    with Image.open(path) as image:
      expected = np.asarray(image)
    np.testing.assert_array_equal(mask_io.read_indexed_png(path), expected, err_msg=name)
  binary = tmp_path / 'one_bit.png'
  Image.fromarray(values > 3).save(binary)
  np.testing.assert_array_equal(mask_io.read_indexed_png(binary), values > 3)
  damaged = tmp_path / 'damaged.png'
  data = bytearray(written['P'].read_bytes())
  data[-30:-20] = b'\0' * 10
  damaged.write_bytes(bytes(data))
  with pytest.raises(ValueError, match='damaged.png is damaged'):
    mask_io.read_indexed_png(damaged)
