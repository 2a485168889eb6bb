"""Tests of the superfeature memory: parity with the reference, limits and degenerate inputs."""

import numpy as np
import pytest

from shls_jax.memory import faiss_memory as memory
from shls_jax.memory import frame_rules, rois
from shls_jax.superpixels.pools import mode_pools

TOLERANCE = 1e-4


def _relative_error(ours, ref):
  return np.abs(ours - ref).max() / max(np.abs(ref).max(), 1e-6)


def _nhwc(pred):
  """[1, C, H, W] recorded log-odds -> [H, W, C]."""
  return pred[0].transpose(1, 2, 0)


def _check_prediction(v, prefix, pred, integer_only=False):
  """Asserts a prediction equals the recorded `prefix.*` stages."""
  for name, ours in (('knn_pred', pred.knn_pred), ('preseg', pred.preseg), ('bbox', pred.boxes)):
    if prefix + name in v:
      np.testing.assert_array_equal(ours, v[prefix + name], err_msg=prefix + name)
  if prefix + 'knn_dist' in v:
    assert _relative_error(pred.knn_scores, v[prefix + 'knn_dist']) < TOLERANCE
    assert _relative_error(pred.cent_scores, v[prefix + 'cent_dist']) < TOLERANCE
  for k, attmap in enumerate(pred.attmaps):
    ref = v[f'{prefix}attmap{k}']
    assert attmap.transpose(2, 0, 1).shape == ref.shape
    assert _relative_error(attmap.transpose(2, 0, 1), ref) < TOLERANCE, f'{prefix}attmap{k}'


@pytest.fixture(scope='module')
def inference_run(parity_vectors):
  """Teacher-forced inference loop: (frame, prediction, confident flags or None) per frame."""
  v = parity_vectors
  num_cls = int(v['num_cls'])
  mem = memory.fit(v['embed.superfeatures'], v['pools.pools0'], num_cls)
  mem, pred = memory.predict(
    mem, v['embed.superfeatures'], v['pools.spx_merged0'], v['label'][0], annotation=v['label'][0]
  )
  steps = [(0, pred, None)]
  prev_mask = v['label'][0]
  for n in range(1, v['spx'].shape[0]):
    feats, spx = v[f'frame{n}.superfeatures'], v['spx'][n]
    mem, pred = memory.predict(mem, feats, spx, prev_mask)
    logodds = _nhwc(v[f'frame{n}.pred'])
    prev_mask = logodds.argmax(-1) + 1
    flags = frame_rules.confident_superpixels(spx, prev_mask, logodds)
    steps.append((n, pred, flags))
    if f'frame{n}.confident' in v:
      recorded = v[f'frame{n}.confident'].astype(bool)
      mem = memory.memorise_confident(mem, feats, spx, pred.preseg, recorded)
  return steps


def test_inference_parity(parity_vectors, inference_run):
  for n, pred, flags in inference_run:
    _check_prediction(parity_vectors, f'frame{n}.', pred)
    if f'frame{n}.confident' in parity_vectors:
      np.testing.assert_array_equal(flags, parity_vectors[f'frame{n}.confident'].astype(bool))


def test_training_parity(parity_vectors):
  v = parity_vectors
  num_cls = int(v['num_cls'])
  merged = v['train.spx_merged0']
  feats0 = v['train.frame0.superfeatures']
  mem = memory.fit(feats0, mode_pools(merged, v['label'][0]), num_cls)
  mem, pred = memory.predict(mem, feats0, merged, v['label'][0], annotation=v['label'][0])
  _check_prediction(v, 'train.frame0.', pred)
  prev_mask = v['label'][0]
  for n in (1, 2):
    feats, spx = v[f'train.frame{n}.superfeatures'], v['spx'][n]
    mem, pred = memory.predict(mem, feats, spx, prev_mask, annotation=v['label'][n])
    _check_prediction(v, f'train.frame{n}.', pred)
    logodds = _nhwc(v[f'train.frame{n}.pred'])
    if f'train.frame{n}.confident' in v:
      flags = frame_rules.confident_superpixels(spx, pred.preseg, logodds)
      np.testing.assert_array_equal(flags, v[f'train.frame{n}.confident'].astype(bool))
      mem = memory.memorise_confident(mem, feats, spx, pred.preseg, flags)
    prev_mask = logodds.argmax(-1) + 1


def _small_memory(seed=0):
  rng = np.random.default_rng(seed)
  feats = rng.random((4, 8)).astype(np.float32)
  return memory.fit(feats, np.array([1, 1, 2, 2]), num_cls=2), rng


def test_memory_cap_keeps_initial_entries():
  mem, rng = _small_memory()
  assert mem.max_size == 40 and mem.initial_sizes == (10, 10)
  first = rng.random((35, 8)).astype(np.float32)
  mem = memory.update(mem, first, np.ones(35, dtype=np.int32))
  assert len(mem.features[0]) == 37 and len(mem.features[1]) == 2
  second = rng.random((10, 8)).astype(np.float32)
  mem = memory.update(mem, second, np.ones(10, dtype=np.int32))
  everything = np.concatenate([_small_memory()[0].features[0], first, second])
  np.testing.assert_array_equal(
    mem.features[0], np.concatenate([everything[:10], everything[-30:]])
  )
  assert mem.centroids[0].shape == (2, 8)
  np.testing.assert_allclose(np.linalg.norm(mem.centroids[0], axis=1), 1.0, rtol=1e-5)


def test_update_drops_removed_pools_but_refits():
  mem, rng = _small_memory()
  mem2 = memory.update(mem, rng.random((3, 8)).astype(np.float32), np.zeros(3, dtype=np.int32))
  assert [len(f) for f in mem2.features] == [2, 2]


def test_single_point_class_is_padded():
  rng = np.random.default_rng(1)
  mem = memory.fit(rng.random((3, 8)).astype(np.float32), np.array([1, 1, 2]), num_cls=2)
  assert mem.centroids[1].shape == (2, 8) and np.isfinite(mem.centroids[1]).all()


def test_zero_superfeatures_give_zero_scores():
  mem, _ = _small_memory()
  spx = np.array([[1, 1, 2], [3, 3, 2]])
  _, pred = memory.predict(mem, np.zeros((3, 8), np.float32), spx, np.full(spx.shape, 2))
  np.testing.assert_array_equal(pred.knn_scores, 0)
  np.testing.assert_array_equal(pred.cent_scores, 0)
  assert set(pred.knn_pred) <= {1, 2}


def test_vanished_object_gets_full_frame(parity_vectors):
  v = parity_vectors
  mem = memory.fit(v['embed.superfeatures'], v['pools.pools0'], int(v['num_cls']))
  mem, _ = memory.predict(mem, v['embed.superfeatures'], v['pools.spx_merged0'], v['label'][0])
  prev_mask = np.where(v['label'][0] == 3, 1, v['label'][0])
  _, pred = memory.predict(mem, v['frame1.superfeatures'], v['spx'][1], prev_mask)
  assert not np.any(pred.preseg == 3)
  np.testing.assert_array_equal(pred.boxes[1], [0, 118, 0, 210])
  assert pred.attmaps[1].shape == (118, 210, 4) and np.isfinite(pred.attmaps[1]).all()


def test_no_background_or_nothing_confident_means_no_update():
  mem, _ = _small_memory()
  spx = np.array([[1, 1, 2, 2], [3, 3, 4, 4]])
  feats = np.ones((4, 8), np.float32)
  logodds = np.zeros((2, 4, 2), np.float32)
  no_background = frame_rules.confident_superpixels(spx, np.full(spx.shape, 2), logodds)
  assert not no_background.any()
  logodds[..., 0] = -1.0
  logodds[0, 0, 0] = 0.0  # the background maximum, left out of the background mean
  nothing = frame_rules.confident_superpixels(spx, np.ones(spx.shape, int), logodds)
  assert not nothing.any()
  assert memory.memorise_confident(mem, feats, spx, np.ones(spx.shape, int), nothing) is mem


def test_clean_preseg_keeps_hull_of_overlapping_components():
  preseg = np.ones((8, 10), np.int32)
  preseg[0:7, 0] = 2
  preseg[6, 0:7] = 2  # component A, overlapping the previous mask
  preseg[4, 2] = 2  # component B, inside A's hull: stays
  preseg[0, 8:10] = 2  # component C, outside the hull: removed
  prev = np.where(preseg == 2, 2, 1)
  prev[4, 2] = prev[0, 8] = prev[0, 9] = 1
  expected = preseg.copy()
  expected[0, 8:10] = 0
  np.testing.assert_array_equal(rois.clean_preseg(preseg, prev, num_cls=2), expected)


def test_roi_rules():
  mask = np.zeros((100, 200), bool)
  mask[40:60, 50:150] = True
  np.testing.assert_array_equal(rois.roi(mask, 0.15), [37, 63, 35, 165])
  np.testing.assert_array_equal(rois.roi(mask, 0.25), [35, 65, 25, 175])
  thin = np.zeros((100, 200), bool)
  thin[10:12, 20:100] = True
  np.testing.assert_array_equal(rois.roi(thin, 0.0), [0, 100, 20, 100])
  np.testing.assert_array_equal(
    rois.grow_to_min_size(np.array([40, 50, 0, 10]), np.array([0, 25, 0, 5]), (100, 200)),
    [33, 57, 0, 10],
  )


def test_bad_inputs_are_refused():
  mem, rng = _small_memory()
  spx = np.array([[1, 2]])
  with pytest.raises(ValueError, match='superfeatures for 2 superpixels'):
    memory.predict(mem, rng.random((3, 8)).astype(np.float32), spx, np.ones((1, 2)))
  with pytest.raises(ValueError, match='differ in shape'):
    memory.predict(mem, rng.random((2, 8)).astype(np.float32), spx, np.ones((2, 2)))
  with pytest.raises(ValueError, match=r'classes \[3\]'):
    memory.fit(rng.random((4, 8)).astype(np.float32), np.array([1, 1, 2, 2]), num_cls=3)
