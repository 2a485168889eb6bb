"""Pseudo-sequences: label, superpixel and pool invariants, occlusion limit, reproducibility."""

import numpy as np
import pytest

from shls_jax import superpixels
from shls_jax.data import pseudo_sequences, synthetic
from shls_jax.superpixels import pools as pools_lib

SIZE = (64, 64)
SEGMENTS = 40


def _still(seed):
  image, mask = synthetic.make_still(np.random.default_rng(seed), 60, 72, soft=seed % 2 == 0)
  return image, mask.astype(np.float32) / 255.0


@pytest.fixture(scope='module')
def sources():
  return [_still(seed) for seed in range(5)]


def _make(sources, seed, **kwargs):
  kwargs = {'size': SIZE, 'n_segments': SEGMENTS, 'others': sources[1:], **kwargs}
  return pseudo_sequences.make_pseudo_sequence(*sources[0], np.random.default_rng(seed), **kwargs)


@pytest.fixture(scope='module')
def sequences(sources):
  return [_make(sources, seed) for seed in range(4)]


def test_shapes_and_dtypes(sequences):
  seq = sequences[0]
  assert seq['image'].shape == (3, *SIZE, 3) and seq['image'].dtype == np.uint8
  assert seq['spx'].shape == (3, *SIZE) and seq['spx'].dtype == np.int32
  assert seq['label'].shape == (3, *SIZE) and seq['label'].dtype == np.int32
  assert len(seq['pools']) == 3 and seq['num_spx'].shape == (3,)


def test_labels_superpixels_and_pools_are_consistent(sequences):
  for seq in sequences:
    num_cls = seq['num_cls']
    assert 2 <= num_cls <= 4
    assert np.unique(seq['label'][0]).tolist() == list(range(1, num_cls + 1))
    assert seq['label'].min() >= 1 and seq['label'].max() <= num_cls
    for t in range(3):
      present = np.unique(seq['spx'][t])
      np.testing.assert_array_equal(present, np.arange(1, present.size + 1))
      assert seq['num_spx'][t] == present.size
      np.testing.assert_array_equal(
        seq['pools'][t], pools_lib.mode_pools(seq['spx'][t], seq['label'][t])
      )


def test_frame0_superpixels_are_merged_with_labels(sequences):
  for seq in sequences:
    slic = superpixels.compute(
      seq['image'][0], 'slic', n_segments=SEGMENTS, compactness=20, sigma=1
    )
    np.testing.assert_array_equal(
      seq['spx'][0], pools_lib.merge_with_annotation(slic, seq['label'][0])
    )
    pool_map = seq['pools'][0][seq['spx'][0] - 1]
    assert np.mean(pool_map == seq['label'][0]) > 0.99


def test_same_seed_same_sequence_other_seed_differs(sources, sequences):
  again = _make(sources, 0)
  for key in ('image', 'spx', 'label', 'num_spx'):
    np.testing.assert_array_equal(again[key], sequences[0][key])
  assert not np.array_equal(sequences[0]['image'], sequences[1]['image'])


def test_frame0_is_the_resized_still_and_without_others_nothing_is_pasted(sources):
  seq = _make(sources, 7, others=None, length=2)
  assert seq['num_cls'] == 2  # the synthetic still's single object
  assert seq['image'].shape[0] == 2
  assert np.abs(seq['image'][0].mean() - sources[0][0].mean()) < 2


def test_image_with_more_regions_than_max_labels_keeps_them_all(sources):
  mask = np.zeros((60, 64), np.float32)
  for top, left in ((4, 4), (4, 40), (36, 4), (36, 40)):
    mask[top : top + 18, left : left + 18] = 1
  seq = pseudo_sequences.make_pseudo_sequence(
    sources[1][0][:, :64],
    mask,
    np.random.default_rng(0),
    size=SIZE,
    n_segments=SEGMENTS,
    others=sources,
  )
  assert seq['num_cls'] == 5


def test_rescaled_still_keeps_its_aspect_and_mask_values_and_its_object_in_later_frames():
  # A large photo with a centred object: 480x720, object 160x240.
  rng = np.random.default_rng(0)
  image = rng.integers(0, 255, (480, 720, 3), dtype=np.uint8)
  mask = np.zeros((480, 720), np.float32)
  mask[160:320, 240:480] = 0.7
  small_image, small_mask = pseudo_sequences.rescale_still(image, mask, 72)
  assert small_image.shape == (72, 108, 3) and small_image.dtype == np.uint8
  assert set(np.unique(small_mask)) == {0.0, np.float32(0.7)}
  assert pseudo_sequences.rescale_still(image, mask, 0)[1] is mask

  def object_fraction(still, still_mask):
    seq = pseudo_sequences.make_pseudo_sequence(
      still, still_mask, np.random.default_rng(1), size=SIZE, n_segments=SEGMENTS, length=4
    )
    return [(labels == 2).mean() for labels in seq['label']]

  # Frame 0 (the whole still resized) holds the object's 1/9; as stored, the later 64x64 crops
  # of the 480x720 photo see a sliver or a blank part of it, rescaled they see it as frame 0.
  as_stored = object_fraction(image, mask)
  rescaled = object_fraction(small_image, small_mask)
  assert abs(as_stored[0] - 1 / 9) < 0.02 and abs(rescaled[0] - 1 / 9) < 0.02
  assert all(0.04 < f < 0.4 for f in rescaled[1:])
  assert not all(0.04 < f < 0.4 for f in as_stored[1:])


def test_paste_refuses_places_that_hide_over_half_an_object():
  frame = np.zeros((24, 24, 3), np.float32)
  label = np.ones((24, 24), np.int32)
  label[7:17, 7:17] = 2
  big = np.ones((20, 20), np.uint8)
  out_frame, out_label, pasted = pseudo_sequences.paste_object(
    frame, label, np.ones((20, 20, 3), np.float32), big, 3, np.random.default_rng(0)
  )
  assert not pasted and out_label is label and out_frame is frame
  for seed in range(10):
    _, out_label, pasted = pseudo_sequences.paste_object(
      frame,
      label,
      np.ones((6, 6, 3), np.float32),
      np.ones((6, 6), np.uint8),
      3,
      np.random.default_rng(seed),
      attempts=50,
    )
    assert pasted
    assert np.count_nonzero(out_label == 2) > 50 and np.count_nonzero(out_label == 3) > 0


def test_random_binarisation_keeps_confident_and_faint_pixels():
  soft = np.linspace(0, 1, 101, dtype=np.float32)[None, :]
  binary = pseudo_sequences.random_binarisation(soft, np.random.default_rng(0))
  assert binary.dtype == np.uint8 and binary[0, 0] == 0 and binary[0, -1] in (0, 1)
  assert 0 < binary.sum() < 101


def test_bad_inputs_are_refused(sources):
  image, mask = sources[0]
  rng = np.random.default_rng(0)
  with pytest.raises(ValueError, match='uint8'):
    pseudo_sequences.make_pseudo_sequence(image.astype(np.float32), mask, rng)
  with pytest.raises(ValueError, match='differ in size'):
    pseudo_sequences.make_pseudo_sequence(image, mask[:-1], rng)
  with pytest.raises(ValueError, match='empty list'):
    pseudo_sequences.make_pseudo_sequence(image, mask, rng, others=[])
