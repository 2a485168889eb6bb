"""ISEC superpixels: parity with the reference outputs, input forms, tiny images, building blocks."""

import numpy as np
import pytest
from skimage.morphology import area_closing, area_opening, thin

from shls_jax.superpixels import compute, isec


@pytest.fixture(scope='module')
def isec_vectors(parity_dir):
  with np.load(parity_dir / 'isec.npz') as f:
    return {k: f[k] for k in f.files}


def _assert_dense(labels, shape):
  assert labels.shape == shape and labels.dtype == np.int32
  assert labels.min() == 1
  np.testing.assert_array_equal(np.unique(labels), np.arange(1, labels.max() + 1))


@pytest.mark.parametrize('index', [0, 1, 2])
def test_matches_reference_labels(isec_vectors, index):
  image, expected = isec_vectors[f'image{index}'], isec_vectors[f'labels{index}']
  labels = compute(image, 'isec')
  assert labels.dtype == np.int32
  np.testing.assert_array_equal(labels, expected)


def test_grey_rgba_and_uint8_forms_agree(isec_vectors):
  rgb = isec_vectors['image0'][:120, :160]
  grey = rgb[:, :, 1]
  grey_as_rgb = np.repeat(grey[:, :, None], 3, axis=2)
  np.testing.assert_array_equal(compute(grey, 'isec'), compute(grey_as_rgb, 'isec'))
  rgba = np.concatenate([rgb, np.full_like(rgb[:, :, :1], 0.25)], axis=2)
  np.testing.assert_array_equal(compute(rgba, 'isec'), compute(rgb, 'isec'))
  as_uint8 = np.round(rgb * 255).astype(np.uint8)
  np.testing.assert_array_equal(
    compute(as_uint8, 'isec'), compute(as_uint8.astype(np.float32) / 255.0, 'isec')
  )


def test_black_image_is_one_segment():
  labels = compute(np.zeros((48, 64, 3), np.float32), 'isec')
  np.testing.assert_array_equal(labels, np.ones((48, 64), np.int32))


@pytest.mark.parametrize('value', [0.4, 1.0])
def test_constant_bright_image_is_a_border_ring_around_one_segment(value):
  # The zero-padded Gaussian turns the image border into an edge.
  labels = compute(np.full((48, 64, 3), value, np.float32), 'isec')
  assert labels.max() == 2
  border = np.ones_like(labels, bool)
  border[1:-1, 1:-1] = False
  assert np.all(labels[border] == 1)
  assert np.all(labels[8:-8, 8:-8] == 2)


@pytest.mark.parametrize('shape', [(1, 1), (1, 7), (2, 2), (3, 5), (8, 8), (5, 1), (2, 134)])
def test_tiny_images_give_dense_labels(shape):
  rng = np.random.default_rng(sum(shape))
  labels = compute(rng.random(shape + (3,), dtype=np.float32), 'isec')
  _assert_dense(labels, shape)


def test_labels_dense_on_noise():
  rng = np.random.default_rng(0)
  labels = compute(rng.random((60, 90, 3)), 'isec')
  _assert_dense(labels, (60, 90))
  assert labels.max() > 1


def test_bad_inputs_raise():
  with pytest.raises(ValueError, match='shape'):
    compute(np.zeros((4, 4, 2), np.float32), 'isec')
  with pytest.raises(ValueError, match=r'\[0, 1\]'):
    compute(np.full((4, 4, 3), 2.0), 'isec')
  with pytest.raises(ValueError, match='dtype'):
    compute(np.zeros((4, 4, 3), np.int64), 'isec')
  with pytest.raises(ValueError, match='filter_order'):
    compute(np.zeros((4, 4, 3), np.float32), 'isec', filter_order=1)


def _random_masks(seed, count=12):
  """Random binary masks, plus constant ones (at least 3x3: smaller crash scikit-image)."""
  rng = np.random.default_rng(seed)
  for i in range(count):
    shape = tuple(rng.integers(3, 40, size=2))
    yield rng.random(shape) < (0.2 + 0.6 * i / count)
  for shape in [(3, 3), (4, 6), (9, 9)]:
    yield np.ones(shape, bool)
    yield np.zeros(shape, bool)


@pytest.mark.parametrize('size', [3, 7, 11])
def test_thin_mask_matches_skimage_thin(size):
  for mask in _random_masks(size):
    padded = np.pad(mask, size, mode='reflect')
    expected = thin(padded, (size - 1) // 2)[size:-size, size:-size]
    np.testing.assert_array_equal(isec.thin_mask(mask, size), expected)


@pytest.mark.parametrize('area', [1, 5, 20])
def test_binary_area_filters_match_skimage(area):
  for mask in _random_masks(area):
    np.testing.assert_array_equal(
      isec.close_holes(mask, area), area_closing(mask, area, connectivity=1)
    )
    as_float = mask.astype(np.float32)
    np.testing.assert_array_equal(
      isec.open_specks(mask, area), area_opening(as_float, area, connectivity=2) > 0
    )


def test_fill_boundaries_reaches_enclosed_pixels():
  labels = np.zeros((5, 5), np.int32)
  labels[0, 0] = 3
  labels[4, 4] = 7
  filled = isec.fill_boundaries(labels)
  assert filled.min() > 0
  assert filled[0, 1] == 3 and filled[3, 3] == 7
  np.testing.assert_array_equal(
    isec.fill_boundaries(np.zeros((2, 3), np.int32)), np.ones((2, 3), np.int32)
  )


def test_timings_cover_every_stage():
  timings = {}
  compute(np.random.default_rng(1).random((32, 48, 3)), 'isec', timings=timings)
  assert set(timings) == {'luminance', 'canny', 'density', 'thin', 'morphology', 'labels'}
  assert all(t >= 0 for t in timings.values())
