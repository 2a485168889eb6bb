"""The jitted JAX SLIC: label-map invariants, agreement with scikit-image's SLIC, compilation."""

import cv2
import jax
import numpy as np
import pytest
from scipy import ndimage
from skimage.color import rgb2lab
from skimage.util import regular_grid

from shls_jax import superpixels
from shls_jax.io import frames as frame_io
from shls_jax.io import masks as mask_io
from shls_jax.superpixels import slic_jax

# Settings of the 60x80 images, shared so that they compile once.
SMALL = {'n_segments': 100, 'capacity': 256}


@pytest.fixture(scope='module')
def scene():
  """A [60, 80, 3] uint8 image of smooth random colour blobs with mild noise."""
  rng = np.random.default_rng(0)
  coarse = rng.integers(0, 256, (6, 8, 3)).astype(np.float32)
  image = cv2.resize(coarse, (80, 60), interpolation=cv2.INTER_CUBIC)
  image += rng.normal(0, 4, image.shape)
  return np.clip(image, 0, 255).astype(np.uint8)


@pytest.fixture(scope='module')
def scene_labels(scene):
  labels, count = slic_jax.segment_jit(scene, **SMALL)
  return np.asarray(labels), int(count)


def _boundaries(labels):
  """[H, W] bool: pixels with a 4-neighbour of another label."""
  out = np.zeros(labels.shape, bool)
  vertical, horizontal = labels[1:] != labels[:-1], labels[:, 1:] != labels[:, :-1]
  out[1:] |= vertical
  out[:-1] |= vertical
  out[:, 1:] |= horizontal
  out[:, :-1] |= horizontal
  return out


def _asa(labels, mask):
  """Achievable segmentation accuracy of superpixels on a bool mask."""
  inside = np.bincount(labels.ravel(), weights=mask.ravel())
  outside = np.bincount(labels.ravel()) - inside
  return np.maximum(inside, outside).sum() / labels.size


def test_dense_int32_labels_and_true_count(scene, scene_labels):
  labels, count = scene_labels
  assert labels.shape == scene.shape[:2] and labels.dtype == np.int32
  np.testing.assert_array_equal(np.unique(labels), np.arange(1, count + 1))
  # Numbered in raster order of each superpixel's first pixel.
  firsts = np.unique(labels.ravel(), return_index=True)[1]
  assert np.all(np.diff(firsts) > 0)


def test_superpixels_are_4_connected_and_not_small(scene_labels):
  labels, count = scene_labels
  for k, box in enumerate(ndimage.find_objects(labels), start=1):
    assert ndimage.label(labels[box] == k)[1] == 1, f'superpixel {k} is not 4-connected'
  ys, xs, _ = slic_jax.grid_seeds(60, 80, SMALL['n_segments'])
  seeds = len(ys) * len(xs)
  assert np.bincount(labels.ravel())[1:].min() >= int(0.5 * 60 * 80 / seeds)


@pytest.mark.parametrize('shape', [(1, 60, 80), (1, 96, 128), (1, 480, 854), (1, 7, 300)])
@pytest.mark.parametrize('n_segments', [1, 20, 100, 1000, 3000])
def test_grid_seeds_match_scikit_image(shape, n_segments):
  slices = regular_grid(shape, n_segments)
  ys, xs, step = slic_jax.grid_seeds(shape[1], shape[2], n_segments)
  np.testing.assert_array_equal(ys, np.arange(shape[1])[slices[1]])
  np.testing.assert_array_equal(xs, np.arange(shape[2])[slices[2]])
  assert step == max(float(s.step or 1) for s in slices)


def test_lab_matches_scikit_image():
  rgb = np.random.default_rng(1).random((17, 23, 3)).astype(np.float32)
  rgb[0, :3] = [[0, 0, 0], [1, 1, 1], [0.01, 0.02, 0.03]]
  np.testing.assert_allclose(np.asarray(slic_jax.rgb_to_lab(rgb)), rgb2lab(rgb), atol=1e-3)


def test_segment_count_close_to_scikit_image(scene, scene_labels):
  reference = superpixels.compute(scene, 'slic', n_segments=SMALL['n_segments'])
  assert 0.5 * reference.max() <= scene_labels[1] <= 1.5 * reference.max()


def test_two_colour_boundary_is_respected():
  yy, xx = np.mgrid[0:60, 0:80]
  mask = 2 * xx + yy > 95  # a slanted edge that no grid cell follows
  image = np.where(mask[..., None], [30, 60, 200], [220, 40, 30]).astype(np.uint8)
  labels, _ = slic_jax.segment_jit(image, **SMALL)
  labels = np.asarray(labels)
  edge = _boundaries(mask.astype(np.int32))
  near = ndimage.maximum_filter(_boundaries(labels), size=5)
  assert near[edge].mean() >= 0.95
  assert _asa(labels, mask) >= 0.99


def test_davis_frame_quality_matches_scikit_image(davis_sample):
  frame = frame_io.read_frame(davis_sample / 'JPEGImages' / '480p' / 'dog' / '00020.jpg')
  mask = mask_io.read_mask(
    davis_sample / 'Annotations' / '480p' / 'dog' / '00020.png', binary_255=None
  )
  frame = cv2.resize(frame, (128, 96), interpolation=cv2.INTER_AREA)
  mask = mask_io.resize_ids(mask, (96, 128)) > 0
  reference = superpixels.compute(frame, 'slic', n_segments=300)
  labels, count = slic_jax.segment_jit(frame, n_segments=300, capacity=512)
  labels = np.asarray(labels)
  assert 0.8 * reference.max() <= int(count) <= 1.2 * reference.max()
  assert _asa(labels, mask) >= _asa(reference, mask) - 0.005
  edge = _boundaries(mask.astype(np.int32))
  recall = lambda x: ndimage.maximum_filter(_boundaries(x), size=5)[edge].mean()
  assert recall(labels) >= recall(reference) - 0.03


@pytest.fixture
def traces():
  """Names of the functions jax traces while the test runs."""
  names = []
  listener = lambda event, _, **kw: names.append(kw.get('fun_name'))
  jax.monitoring.register_event_duration_secs_listener(listener)
  yield names
  jax.monitoring.unregister_event_duration_listener(listener)


def test_same_shape_does_not_recompile(scene, scene_labels, traces):
  other = np.ascontiguousarray(scene[::-1])
  before = slic_jax.segment_jit._cache_size()
  labels, count = slic_jax.segment_jit(other, **SMALL)
  assert slic_jax.segment_jit._cache_size() == before
  # A jax array adds a dispatch-cache entry but reuses the traced and compiled program.
  slic_jax.segment_jit(jax.numpy.asarray(other), **SMALL)
  assert 'segment' not in traces
  assert int(count) == int(np.asarray(labels).max())


def test_capacity_clips_labels_and_keeps_true_count(scene, scene_labels):
  full, count = scene_labels
  labels, clipped_count = slic_jax.segment_jit(scene, n_segments=SMALL['n_segments'], capacity=16)
  assert int(clipped_count) == count > 16
  np.testing.assert_array_equal(np.asarray(labels), np.minimum(full, 16))


def test_rejects_bad_images_and_settings():
  with pytest.raises(ValueError, match='RGB'):
    slic_jax.segment(np.zeros((8, 8), np.uint8), n_segments=4, capacity=8)
  with pytest.raises(ValueError, match='>= 1'):
    slic_jax.segment(np.zeros((8, 8, 3), np.uint8), n_segments=0, capacity=8)
