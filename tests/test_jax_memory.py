"""Tests of the on-device memory of inference against the host (faiss) memory: the per-class cap,
the scores and the decisions on the reference's recorded frames, and its use by the engine."""

import numpy as np
import pytest

from shls_jax.memory import faiss_memory, jax_memory

ITERATIONS = 20


def _unit(rows):
  return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def _stored_rows(memory) -> list[set]:
  features = np.asarray(memory.features)
  filled = np.asarray(memory.filled)
  return [{tuple(np.round(r, 5)) for r in features[c][filled[c]]} for c in range(memory.num_cls)]


def _ring_slots(added, count, keep, max_size):
  """Slots of `count` new entries of a class that has had `added` entries."""
  return jax_memory.ring_slot(np.arange(added, added + count), added + count, keep, max_size)


def test_ring_slots_keep_the_oldest_and_the_newest():
  # keep 3, cap 8: a ring of 5 slots (3..7) after the kept ones.
  np.testing.assert_array_equal(_ring_slots(0, 4, 3, 8), [0, 1, 2, 3])
  # Entry 4 is overwritten by entry 9 of the same update.
  np.testing.assert_array_equal(_ring_slots(4, 6, 3, 8), [-1, 5, 6, 7, 3, 4])
  # Eleven entries at once into a ring of five: only the last five survive.
  np.testing.assert_array_equal(_ring_slots(3, 11, 3, 8), [-1] * 6 + [4, 5, 6, 7, 3])


def test_cap_holds_the_host_memory_entries():
  rng = np.random.default_rng(0)
  frame0 = rng.normal(size=(6, 8)).astype(np.float32)
  pools0 = np.array([1, 1, 1, 2, 2, 1])
  host = faiss_memory.fit(frame0, pools0, 2)
  device = jax_memory.fit(frame0, pools0, 2, ITERATIONS)
  # Cap 60 per class; class 2 keeps its oldest 10 and grows past the cap within a few updates.
  for step in range(8):
    new = rng.normal(size=(int(rng.integers(5, 30)), 8)).astype(np.float32)
    pools = rng.choice([0, 1, 2, 2], size=len(new))
    host = faiss_memory.update(host, new, pools)
    device = jax_memory.update(device, new, pools)
    expected = [{tuple(np.round(r, 5)) for r in _unit(f)} for f in host.features]
    assert _stored_rows(device) == expected, step
  assert max(len(f) for f in host.features) == host.max_size == 60


def test_added_classes_hold_the_host_memory_entries_and_boxes():
  rng = np.random.default_rng(2)
  frame0 = rng.normal(size=(6, 8)).astype(np.float32)
  pools0 = np.array([1, 1, 1, 2, 2, 1])
  mask = np.ones((8, 8), np.int64)
  mask[1:3, 2:5], mask[5:8, 0:2] = 3, 4
  memories = {
    'host': faiss_memory.fit(frame0, pools0, 2),
    'device': jax_memory.fit(frame0, pools0, 2, ITERATIONS),
  }
  modules = {'host': faiss_memory, 'device': jax_memory}
  spx = np.arange(1, 7).repeat(11)[:64].reshape(8, 8)
  joining = rng.normal(size=(3, 8)).astype(np.float32)
  for name, module in modules.items():
    memories[name], _ = module.predict(memories[name], frame0, spx, np.ones_like(mask))
    memories[name] = module.add_classes(memories[name], joining, np.array([3, 3, 4]), mask)
    memories[name] = module.update(memories[name], joining[:2], np.array([4, 1]))
  host, device = memories['host'], memories['device']
  assert host.num_cls == device.num_cls == 4
  assert _stored_rows(device) == [{tuple(np.round(r, 5)) for r in _unit(f)} for f in host.features]
  np.testing.assert_array_equal(host.initial_boxes, device.initial_boxes)
  np.testing.assert_array_equal(host.initial_boxes[1:], [[1, 3, 2, 5], [5, 8, 0, 2]])
  assert host.initial_sizes == device.initial_sizes == (20, 10, 10, 5)
  with pytest.raises(ValueError, match='new classes must be 5'):
    faiss_memory.add_classes(host, joining[:1], np.array([6]), mask)


def test_scores_match_the_host_memory_on_separated_classes():
  rng = np.random.default_rng(1)
  centres = _unit(rng.normal(size=(3, 16)))
  pools = np.repeat([1, 2, 3], 40)
  features = (centres[pools - 1] + 0.05 * rng.normal(size=(120, 16))).astype(np.float32)
  queries = (centres[[0, 1, 2, 1]] + 0.05 * rng.normal(size=(4, 16))).astype(np.float32)
  host = faiss_memory.fit(features, pools, 3)
  device = jax_memory.fit(features, pools, 3, ITERATIONS)
  host_scores = faiss_memory._scores(host, queries)
  spx = np.arange(1, 5).reshape(2, 2)
  prev = np.array([[1, 2], [3, 2]])
  _, pred = jax_memory.predict(device, queries, spx, prev)
  np.testing.assert_array_equal(pred.knn_pred, host_scores[0])
  np.testing.assert_allclose(pred.knn_scores, host_scores[1], atol=1e-5)
  # Two centroids per class of one blob: both k-means split it, not necessarily alike.
  np.testing.assert_allclose(pred.cent_scores, host_scores[2], atol=0.05)


def test_recorded_frames_decided_as_the_host_memory_does(parity_vectors):
  """The reference's frames, teacher-forced: the device memory's kNN classes and
  pre-segmentations against the host memory's, frame by frame."""
  v = parity_vectors
  num_cls = int(v['num_cls'])
  memories = {
    'host': faiss_memory.fit(v['embed.superfeatures'], v['pools.pools0'], num_cls),
    'device': jax_memory.fit(v['embed.superfeatures'], v['pools.pools0'], num_cls, 20),
  }
  modules = {'host': faiss_memory, 'device': jax_memory}
  prev_mask = v['label'][0]
  agreement = []
  for n in range(1, v['spx'].shape[0]):
    feats, spx = v[f'frame{n}.superfeatures'], v['spx'][n]
    preds = {}
    for name, module in modules.items():
      if n == 1:
        memories[name], _ = module.predict(
          memories[name], v['embed.superfeatures'], v['pools.spx_merged0'], prev_mask, prev_mask
        )
      memories[name], preds[name] = module.predict(memories[name], feats, spx, prev_mask)
    # Exact similarity ties (identical superfeatures of two classes) break differently.
    same = np.all(np.abs(preds['device'].knn_scores - preds['host'].knn_scores) < 1e-4, axis=1)
    agreement.append(
      (
        np.mean(same),
        np.mean(preds['host'].knn_pred == preds['device'].knn_pred),
        np.mean(preds['host'].preseg == preds['device'].preseg),
      )
    )
    logodds = v[f'frame{n}.pred'][0].transpose(1, 2, 0)
    prev_mask = logodds.argmax(-1) + 1
    if f'frame{n}.confident' in v:
      recorded = v[f'frame{n}.confident'].astype(bool)
      for name, module in modules.items():
        memories[name] = module.memorise_confident(
          memories[name], feats, spx, preds[name].preseg, recorded
        )
  # Measured: 0.963..1.0 of the rows per frame and measure.
  assert np.min(agreement) > 0.95, agreement


def test_engine_runs_with_either_memory(noise_video):
  import jax

  from shls_jax.inference import defaults
  from shls_jax.inference.engine import Propagator
  from shls_jax.model import shls

  frames, spx = noise_video(3)
  first = np.zeros((48, 64), np.uint8)
  first[10:30, 20:40] = 1
  variables = shls.init_variables(jax.random.PRNGKey(0))
  masks = {}
  for name in ('faiss', 'device'):
    config = defaults.get_config()
    config.mode, config.memory, config.superpixel_capacity = 'fast', name, 64
    masks[name] = Propagator(variables, config).run(frames, spx, first).masks
  assert masks['device'].shape == masks['faiss'].shape == (3, 48, 64)
  np.testing.assert_array_equal(masks['device'][0], first)
  config = defaults.get_config()
  config.memory = 'gpu'
  with pytest.raises(ValueError, match="memory must be one of \\('faiss', 'device'\\)"):
    Propagator(variables, config)
