"""Still-image sources: region labels of hand-made masks, folder layouts, errors, tfds builder."""

import cv2
import numpy as np
import pytest

from shls_jax.data import stills, synthetic


def _square(shape, top, left, side):
  mask = np.zeros(shape, np.uint8)
  mask[top : top + side, left : left + side] = 1
  return mask


def test_region_labels_background_first_then_objects_in_raster_order():
  mask = _square((12, 12), 1, 6, 4) | _square((12, 12), 6, 1, 4)
  labels = stills.region_labels(mask, min_fraction=0)
  assert labels.dtype == np.int32
  expected = np.ones((12, 12), np.int32)
  expected[1:5, 6:10] = 2  # first object met in raster order
  expected[6:10, 1:5] = 3
  np.testing.assert_array_equal(labels, expected)


def test_region_labels_object_at_top_left_corner_takes_label_1():
  labels = stills.region_labels(_square((8, 8), 0, 0, 4), min_fraction=0)
  # The edge is not a contour: the object's inner rows/cols 0..2 form region 1; its contour
  # (row 3, col 3) joins the larger neighbouring label, the background (2).
  expected = np.full((8, 8), 2, np.int32)
  expected[:3, :3] = 1
  np.testing.assert_array_equal(labels, expected)


def test_region_labels_soft_mask_is_binarised_above_zero():
  soft = _square((10, 10), 3, 3, 4).astype(np.float32) * 0.05
  assert stills.region_labels(soft, min_fraction=0).max() == 2


def test_tiny_regions_are_absorbed_and_labels_stay_dense():
  mask = _square((100, 100), 50, 50, 3) | _square((100, 100), 10, 10, 20)
  labels = stills.region_labels(mask)  # the 9-pixel square is under 0.1% of 10000 pixels
  assert np.unique(labels).tolist() == [1, 2]
  assert np.all(labels[50:53, 50:53] == 1)
  assert stills.region_labels(mask, min_fraction=0).max() == 3


def test_region_labels_rejects_bad_masks():
  with pytest.raises(ValueError, match='H, W'):
    stills.region_labels(np.zeros((4, 4, 3)))
  with pytest.raises(ValueError, match='at least 2'):
    stills.region_labels(np.zeros((1, 5)))


@pytest.fixture(scope='module')
def msra_root(tmp_path_factory):
  root = tmp_path_factory.mktemp('msra')
  synthetic.write_stills(root, num_images=5, size=(40, 48), seed=3)
  return root


def test_msra10k_layout_splits_and_loading(msra_root):
  everything = stills.list_msra10k(msra_root)
  train = stills.list_msra10k(msra_root, 'train')
  val = stills.list_msra10k(msra_root, 'val')
  assert [s.name for s in everything] == [s.name for s in train + val]
  assert len(val) == 1
  image, mask = stills.load_sample(train[0])
  assert image.dtype == np.uint8 and image.shape == (40, 48, 3)
  assert mask.dtype == np.float32 and mask.shape == (40, 48)
  assert 0 <= mask.min() and mask.max() == 1.0
  source = stills.StillImageSet(train)
  assert len(source) == 4 and source[1][0].shape == (40, 48, 3)


def test_separate_mask_folder_and_image_folder_layouts(msra_root, tmp_path):
  images, masks = tmp_path / 'images', tmp_path / 'saliency'
  images.mkdir()
  masks.mkdir()
  for path in (msra_root / 'Imgs').glob('*.jpg'):
    (images / path.name).write_bytes(path.read_bytes())
  for path in sorted((msra_root / 'Imgs').glob('*.png'))[:2]:
    (masks / path.name).write_bytes(path.read_bytes())
  samples = stills.list_folder(images, masks)  # images without a mask are skipped
  assert [s.name for s in samples] == ['00000', '00001']
  assert all(s.mask_path.parent == masks for s in samples)
  with pytest.raises(FileNotFoundError, match='does not exist'):
    stills.list_msra10k(msra_root, mask_dir=masks)  # three images lack a mask there


def test_clear_errors(msra_root, tmp_path):
  with pytest.raises(FileNotFoundError, match='not a directory'):
    stills.list_msra10k(tmp_path / 'missing')
  with pytest.raises(FileNotFoundError, match='split file'):
    stills.list_msra10k(msra_root, 'test')
  (tmp_path / 'Imgs').mkdir()
  (tmp_path / 'empty.txt').write_text('\n')
  with pytest.raises(ValueError, match='lists no images'):
    stills.list_msra10k(tmp_path, 'empty')
  with pytest.raises(ValueError, match='no .jpg'):
    stills.list_msra10k(tmp_path)
  with pytest.raises(ValueError, match='at least one'):
    stills.StillImageSet([])
  broken = tmp_path / 'Imgs' / 'a.jpg'
  broken.write_bytes(b'not a jpeg')
  cv2.imwrite(str(tmp_path / 'Imgs' / 'a.png'), np.zeros((5, 5), np.uint8))
  with pytest.raises(FileNotFoundError, match='cannot read image'):
    stills.load_sample(stills.list_msra10k(tmp_path)[0])
  cv2.imwrite(str(broken), np.zeros((6, 5, 3), np.uint8))
  with pytest.raises(ValueError, match=r'\(6, 5\) but mask'):
    stills.load_sample(stills.list_msra10k(tmp_path)[0])


def test_tfds_builder_prepares_splits_from_manual_dir(msra_root, tmp_path):
  tfds = pytest.importorskip('tensorflow_datasets')
  from shls_jax.data import tfds_stills

  builder = tfds_stills.StillImages(data_dir=tmp_path, file_format='array_record')
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=msra_root))
  assert builder.info.splits['train'].num_examples == 4
  assert builder.info.splits['val'].num_examples == 1
  source = tfds_stills.as_source(builder, 'val')
  image, mask = source[0]
  expected_image, expected_mask = stills.load_sample(stills.list_msra10k(msra_root, 'val')[0])
  np.testing.assert_array_equal(image, expected_image)
  np.testing.assert_allclose(mask, expected_mask, atol=1 / 255)
