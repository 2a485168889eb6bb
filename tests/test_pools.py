"""Tests of superpixel pools and the frame-0 merge of superpixels with the annotation."""

import numpy as np
import pytest

from shls_jax.superpixels.pools import merge_with_annotation, mode_pools


def test_parity_merge_and_pools(parity_vectors):
  v = parity_vectors
  merged = merge_with_annotation(v['spx'][0], v['label'][0])
  assert merged.dtype == np.int32
  np.testing.assert_array_equal(merged, v['pools.spx_merged0'])
  np.testing.assert_array_equal(merged, v['train.spx_merged0'])
  np.testing.assert_array_equal(mode_pools(merged, v['label'][0]), v['pools.pools0'])
  np.testing.assert_array_equal(mode_pools(v['spx'][1], v['label'][1]), v['pools.pools1'])


def test_mode_pools_ties_and_removed_pixels():
  spx = np.array([[1, 1, 2, 2], [1, 1, 2, 3]])
  label = np.array([[3, 2, 0, 0], [3, 2, 1, 2]])
  # Superpixel 1: 2 vs 3 tie -> 2; superpixel 2: 0 (removed) is the mode; superpixel 3: 2.
  np.testing.assert_array_equal(mode_pools(spx, label), [2, 0, 2])


def test_merge_splits_misplaced_pixels_into_pieces():
  spx = np.array([[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 3, 3]])
  label = np.array([[1, 2, 1, 1], [1, 1, 1, 1], [1, 1, 2, 2]])
  expected = np.array([[1, 4, 2, 2], [1, 1, 2, 2], [3, 3, 5, 5]])
  np.testing.assert_array_equal(merge_with_annotation(spx, label), expected)


def test_merge_piece_fuses_into_existing_id():
  # Background yields no piece, so the largest id so far is 2 and the class-2 piece gets
  # 2 + 2 + 1 = 5, the id of superpixel 5.
  spx = np.array([[1, 1, 3, 3], [2, 2, 4, 4], [5, 5, 5, 5]])
  label = np.array([[1, 1, 2, 2], [1, 2, 2, 2], [2, 2, 2, 2]])
  expected = np.array([[1, 1, 3, 3], [2, 5, 4, 4], [5, 5, 5, 5]])
  np.testing.assert_array_equal(merge_with_annotation(spx, label), expected)


def test_merge_third_class_inside_other_pool():
  spx = np.array([[1, 1, 3, 3], [2, 2, 4, 4], [5, 5, 4, 5]])
  label = np.array([[1, 1, 2, 2], [1, 1, 2, 2], [2, 2, 3, 2]])
  expected = np.array([[1, 1, 3, 3], [2, 2, 4, 4], [5, 5, 6, 5]])
  np.testing.assert_array_equal(merge_with_annotation(spx, label), expected)


@pytest.mark.parametrize(
  'spx, label, message',
  [
    (np.array([[1, 3]]), np.array([[1, 1]]), 'dense'),
    (np.array([[0, 1]]), np.array([[1, 1]]), 'dense'),
    (np.array([[1, 2]]), np.array([[1, 1, 1]]), 'shape'),
    (np.array([[1, 2]]), np.array([[1, -1]]), '>= 0'),
    (np.array([[1.0, 2.0]]), np.array([[1, 1]]), 'integer'),
  ],
)
def test_bad_maps_are_refused(spx, label, message):
  with pytest.raises(ValueError, match=message):
    mode_pools(spx, label)


def test_merge_refuses_unlabelled_pixels():
  with pytest.raises(ValueError, match='start at 1'):
    merge_with_annotation(np.array([[1, 2]]), np.array([[0, 1]]))


# --- traced pools (superpixels inside the training step) -----------------------------------------


def _same_partition(a, b) -> bool:
  pairs = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1).shape[1]
  return pairs == np.unique(a).size == np.unique(b).size


def test_traced_merge_gives_the_host_partition(parity_vectors):
  jax = pytest.importorskip('jax')
  from shls_jax.superpixels import pools_jax

  v = parity_vectors
  spx, label = v['spx'][0], v['label'][0]
  capacity, num_cls = int(spx.max()), int(label.max())
  merged, count = jax.jit(pools_jax.merge_with_annotation, static_argnums=(2, 3))(
    spx, label, capacity, num_cls
  )
  merged = np.asarray(merged)
  assert int(count) == merged.max() == np.unique(merged).size
  assert _same_partition(merged, v['pools.spx_merged0'])
  pools = pools_jax.mode_pools(merged, label, int(count), num_cls)
  host = mode_pools(merged, label)
  np.testing.assert_array_equal(np.asarray(pools), host)


def test_traced_merge_of_misplaced_pixels():
  from shls_jax.superpixels import pools_jax

  spx = np.array([[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 3, 3]], np.int32)
  label = np.array([[1, 2, 1, 1], [1, 1, 1, 1], [1, 1, 2, 2]], np.int32)
  merged, count = pools_jax.merge_with_annotation(spx, label, 4, 2)
  assert int(count) == 5
  assert _same_partition(np.asarray(merged), merge_with_annotation(spx, label))
