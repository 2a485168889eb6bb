"""Tests of the device memory and the static-shape training step on tiny generated sequences."""

import functools
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from shls_jax.memory import frame_rules, knn, rois, rules, training_memory
from shls_jax.model import backbone, shls
from shls_jax.training import defaults as step_defaults
from shls_jax.training import losses, optimizer
from shls_jax.training import train_step as ts

REPO = Path(__file__).resolve().parents[1]


def fake_batch(seed, devices, per_device, frames=3, size=32, capacity=64):
  """Pipeline-shaped batch [D, B, T, ...]: 8x8 block superpixels, one or two box objects."""
  rng = np.random.default_rng(seed)
  shape = (devices, per_device, frames)
  blocks = (np.arange(size)[:, None] // 8) * (size // 8) + np.arange(size)[None, :] // 8 + 1
  num_spx = int(blocks.max())
  label = np.ones(shape + (size, size), np.int32)
  pools = np.zeros(shape + (capacity,), np.int32)
  num_cls = np.zeros((devices, per_device), np.int32)
  for d in range(devices):
    for b in range(per_device):
      num_cls[d, b] = 2 + (d + b) % 2
      for f in range(frames):
        y, x = rng.integers(2, 10, 2) + f
        label[d, b, f, y : y + 12, x : x + 10] = 2
        if num_cls[d, b] == 3:
          label[d, b, f, 18 + f : 28, 16 : 30 - f] = 3
        for s in range(1, num_spx + 1):
          pools[d, b, f, s - 1] = np.bincount(label[d, b, f][blocks == s]).argmax()
  return dict(
    image=rng.normal(size=shape + (size, size, 3)).astype(np.float32),
    spx=np.broadcast_to(blocks, shape + (size, size)).astype(np.int32).copy(),
    label=label,
    pools=pools,
    spx_valid=np.broadcast_to(np.arange(capacity) < num_spx, shape + (capacity,)).copy(),
    num_cls=num_cls,
  )


def tiny_config(**overrides):
  config = step_defaults.get_config()
  config.crop_size = (8, 8)
  config.kmeans_iterations = 3
  config.update(overrides)
  return config


# --- device memory against the host memory ---------------------------------------------------


def test_knn_scores_match_host():
  rng = np.random.default_rng(0)
  stored = rng.normal(size=(20, 8)).astype(np.float32)
  pools = rng.integers(1, 4, 20).astype(np.int32)
  queries = rng.normal(size=(15, 8)).astype(np.float32)
  memory = training_memory.fit(
    jnp.asarray(stored), jnp.asarray(pools), capacity=32, num_classes=4, iterations=10
  )
  pred, scores = training_memory.knn_predict(memory, jnp.asarray(queries))
  sims, ids = knn.knn_search(stored, queries)
  weights = rules.vote_weights()
  np.testing.assert_array_equal(pred, knn.weighted_vote(pools[ids], weights, 4))
  np.testing.assert_allclose(scores, knn.class_scores(sims, pools[ids], weights, 4), atol=1e-6)


def test_kmeans_centroids_are_unit_and_score_members():
  rng = np.random.default_rng(1)
  centres = np.array([[1, 0, 0], [0, 1, 0]], np.float32)
  points = np.repeat(centres, 10, axis=0) + 0.05 * rng.normal(size=(20, 3)).astype(np.float32)
  memory = training_memory.fit(
    jnp.asarray(points), jnp.ones(20, jnp.int32), capacity=20, num_classes=2, iterations=10
  )
  np.testing.assert_allclose(np.linalg.norm(memory.centroids[0], axis=-1), 1.0, atol=1e-6)
  # The two clusters are found: every point is close to its nearest centroid.
  assert float(training_memory.centroid_scores(memory, jnp.asarray(points))[:, 0].min()) > 0.99
  np.testing.assert_array_equal(memory.centroids[1], 0.0)  # absent class


@pytest.mark.parametrize('box', [(3, 9, 5, 6), (0, 32, 30, 32), None])
def test_annotation_box_matches_host(box):
  mask = np.zeros((32, 40), bool)
  if box is not None:
    mask[box[0] : box[1], box[2] : box[3]] = True
  np.testing.assert_array_equal(
    training_memory.annotation_box(jnp.asarray(mask)),
    rois.roi(mask, widening=rules.ANNOTATION_WIDENING),
  )


def test_confident_superpixels_match_host():
  rng = np.random.default_rng(2)
  spx = (np.arange(16)[:, None] // 4) * 4 + np.arange(16)[None, :] // 4 + 1
  seg = rng.integers(1, 4, (16, 16))
  logodds = rng.normal(size=(16, 16, 4)).astype(np.float32)
  got = training_memory.confident_superpixels(
    jnp.asarray(spx), jnp.asarray(seg), jnp.asarray(logodds), num_segments=20
  )
  want = frame_rules.confident_superpixels(spx, seg, logodds)
  np.testing.assert_array_equal(got[:16], want)
  assert not got[16:].any()
  none = training_memory.confident_superpixels(
    jnp.asarray(spx), jnp.full((16, 16), 2), jnp.asarray(logodds), num_segments=20
  )
  assert not none.any()


# --- NT-Xent on device ------------------------------------------------------------------------


def test_masked_ntxent_equals_triplet_loss():
  rng = np.random.default_rng(3)
  features = rng.normal(size=(12, 6)).astype(np.float32)
  labels = np.array([1, 1, 2, 2, 2, 3, 1, 2, 0, 0, 4, 1], np.int32)
  pos, neg, ok = losses.sample_triplets(jax.random.PRNGKey(0), jnp.asarray(labels), 4)
  mask = jnp.broadcast_to(ok[:, None], pos.shape)
  got = losses.masked_ntxent(jnp.asarray(features), pos, mask, neg, mask)
  anchors = np.repeat(np.flatnonzero(ok), 4)
  triplets = np.stack([anchors, np.asarray(pos)[ok].ravel(), np.asarray(neg)[ok].ravel()])
  want = losses.ntxent_loss(features, labels, triplets)
  np.testing.assert_allclose(got, want, rtol=1e-5)


def test_sample_triplets_follow_the_classes():
  labels = jnp.array([1, 1, 2, 2, 2, 3, 0, 0], jnp.int32)
  pos, neg, ok = losses.sample_triplets(jax.random.PRNGKey(1), labels, 200)
  np.testing.assert_array_equal(ok, [1, 1, 1, 1, 1, 0, 0, 0])
  pos, neg, labels = np.asarray(pos), np.asarray(neg), np.asarray(labels)
  for anchor in np.flatnonzero(ok):
    assert (labels[pos[anchor]] == labels[anchor]).all() and (pos[anchor] != anchor).all()
    assert (labels[neg[anchor]] != labels[anchor]).all() and (labels[neg[anchor]] > 0).all()
    # Uniform over the candidates: each one is drawn.
    assert np.unique(pos[anchor]).size == (labels == labels[anchor]).sum() - 1
    assert np.unique(neg[anchor]).size == ((labels != labels[anchor]) & (labels > 0)).sum()


# --- the training step --------------------------------------------------------------------------


def _run_steps(config, batch, num_steps):
  state = ts.replicate(ts.create_train_state(jax.random.PRNGKey(0), config))
  before = jax.device_get(jax.tree.map(lambda x: x[0], state))
  step = jax.pmap(
    functools.partial(ts.train_step, config=config), axis_name='batch', donate_argnums=(0,)
  )
  history = []
  for _ in range(num_steps):
    state, metrics = step(state, batch)
    history.append({k: float(v[0]) for k, v in jax.device_get(metrics).items()})
  return before, jax.device_get(jax.tree.map(lambda x: x[0], state)), history


def _max_change(a, b):
  return max(
    float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))))
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))
  )


def test_frozen_embedding_without_ntxent():
  config = tiny_config(frozen=('backbone', 'heads'), use_ntxent=False)
  # Two frames (one decoder frame) keep the compilation short; the 4-device test runs three.
  before, after, history = _run_steps(config, fake_batch(0, 1, 1, frames=2), 1)
  assert history[0]['ntxent'] == 0.0 and history[0]['ce'] > 0.0
  for name in optimizer.FROZEN_GROUPS['backbone'] + optimizer.FROZEN_GROUPS['heads']:
    assert _max_change(before.params[name], after.params[name]) == 0.0
    if name in before.batch_stats:
      assert _max_change(before.batch_stats[name], after.batch_stats[name]) == 0.0
  assert _max_change(before.params['segmenter'], after.params['segmenter']) > 0.0
  assert _max_change(before.batch_stats['segmenter'], after.batch_stats['segmenter']) > 0.0


def test_loss_decreases_on_a_fixed_batch():
  config = tiny_config(ntxent_mode='all_pairs', use_ce=False, learning_rate=1e-3)
  before, after, history = _run_steps(config, fake_batch(1, 1, 2, frames=2), 4)
  losses_seen = [h['loss'] for h in history]
  assert all(h['ce'] == 0.0 for h in history)
  assert losses_seen[-1] < losses_seen[0], losses_seen
  # The decoder gets no gradient without the CE.
  assert _max_change(before.params['segmenter'], after.params['segmenter']) == 0.0


def test_moving_average_is_the_bias_corrected_mean_of_the_iterates():
  decay = 0.9
  state = ts.create_train_state(jax.random.PRNGKey(0), tiny_config(ema_decay=decay))
  assert ts.create_train_state(jax.random.PRNGKey(0), tiny_config()).ema is None
  apply = jax.jit(ts.apply_gradients)
  iterates, stats = [], []
  for i in range(3):
    grads = jax.tree.map(lambda x, i=i: jnp.full_like(x, (-1.0) ** i), state.params)
    batch_stats = jax.tree.map(lambda x, i=i: x + (i + 1.0), state.batch_stats)
    state, _ = apply(state, grads, batch_stats, {})
    iterates.append(state.params)
    stats.append(state.batch_stats)
  weights = np.array([decay**2, decay, 1.0]) / (decay**2 + decay + 1.0)
  expected = jax.tree.map(lambda *x: sum(w * v for w, v in zip(weights, x)), *iterates)
  expected_stats = jax.tree.map(lambda *x: sum(w * v for w, v in zip(weights, x)), *stats)
  close = functools.partial(np.testing.assert_allclose, rtol=1e-5, atol=1e-6)
  jax.tree.map(close, state.ema['params'], expected)
  jax.tree.map(close, state.ema['batch_stats'], expected_stats)
  assert ts.evaluated_variables(state) == state.ema


_MULTI_DEVICE = textwrap.dedent("""
    import functools, sys
    import jax, numpy as np, optax
    sys.path.insert(0, {tests!r})
    from test_train_step import fake_batch, tiny_config
    from shls_jax.training import train_step as ts

    config = tiny_config()
    batch = fake_batch(5, 4, 1)
    traces = []
    def counted(state, batch):
      traces.append(1)
      return ts.train_step(state, batch, config=config)
    # SGD at rate 1 makes the parameter change the averaged gradient itself: Adam's first step
    # (about lr x sign(g)) would turn float rounding of near-zero gradients into lr-sized jumps.
    state0 = ts.create_train_state(jax.random.PRNGKey(0), config)
    state0 = state0.replace(tx=optax.sgd(1.0), opt_state=optax.sgd(1.0).init(state0.params))
    step = jax.pmap(counted, axis_name='batch', donate_argnums=(0,))
    state, metrics = step(ts.replicate(state0), batch)
    new_params = jax.tree.map(lambda x: np.asarray(x[0]), state.params)

    # Reference on one device: per-sample gradients with the same per-device keys, averaged.
    grad_fn = jax.jit(functools.partial(ts.compute_gradients, config=config))
    outs = []
    for d in range(4):
      rng = jax.random.fold_in(jax.random.fold_in(state0.rng, 0), d)
      sample = {{k: v[d] for k, v in batch.items()}}
      outs.append(grad_fn(state0.params, state0.batch_stats, sample, rng))
    mean = lambda *x: sum(x) / len(x)
    grads = jax.tree.map(mean, *[o[0] for o in outs])
    stats = jax.tree.map(lambda *x: x[0] if x[0].dtype.kind == 'i' else mean(*x),
                         *[o[1] for o in outs])
    ref, _ = jax.jit(ts.apply_gradients)(state0, grads, stats, outs[0][2])
    scale = max(float(np.max(np.abs(g))) for g in jax.tree.leaves(grads))
    diff = max(float(np.max(np.abs(a - np.asarray(b)))) for a, b in
               zip(jax.tree.leaves(new_params), jax.tree.leaves(ref.params))) / scale
    stats_diff = max(float(np.max(np.abs(np.asarray(a[0]) - np.asarray(b)))) for a, b in
                     zip(jax.tree.leaves(state.batch_stats), jax.tree.leaves(ref.batch_stats)))
    for seed in (6, 7):
      state, metrics = step(state, fake_batch(seed, 4, 1))
    print('RESULT', diff, stats_diff, len(traces), float(metrics['loss'][0]))
""")


def _on_four_devices(script: str) -> str:
  """The RESULT line of `script` run in a process with 4 CPU devices."""
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=4', JAX_PLATFORMS='cpu')
  out = subprocess.run(
    [sys.executable, '-c', script.format(tests=str(REPO / 'tests'))],
    env=env,
    cwd=REPO,
    capture_output=True,
    text=True,
    check=False,
  )
  assert out.returncode == 0, out.stderr[-3000:]
  return [s for s in out.stdout.splitlines() if s.startswith('RESULT')][-1]


def test_pmap_on_four_devices_equals_one_device_reference():
  line = _on_four_devices(_MULTI_DEVICE)
  diff, stats_diff, traces, loss = line.split()[1:]
  assert float(diff) < 1e-5 and float(stats_diff) < 1e-5, line  # diff: relative to max |grad|
  assert int(traces) == 1, line  # three steps, one trace
  assert np.isfinite(float(loss))


_JIT_AND_PMAP = textwrap.dedent("""
    import functools, sys
    import jax, numpy as np
    sys.path.insert(0, {tests!r})
    from test_train_step import fake_batch, tiny_config
    from shls_jax.training import train_step as ts

    config = tiny_config()
    state0 = ts.create_train_state(jax.random.PRNGKey(0), config)
    pmapped = jax.pmap(functools.partial(ts.train_step, config=config), axis_name='batch')
    mesh = ts.batch_mesh()
    jitted = ts.sharded_train_step(config, mesh)
    by_pmap, by_jit = ts.replicate(state0), ts.place_state(state0, mesh)
    worst = {{}}
    for seed in (5, 6, 7):
      batch = fake_batch(seed, 4, 1)
      by_pmap, pmap_metrics = pmapped(by_pmap, batch)
      by_jit, jit_metrics = jitted(by_jit, ts.place_batch(batch, mesh))
      for name in ('loss', 'ntxent', 'ce', 'grad_norm'):
        a, b = float(pmap_metrics[name][0]), float(jit_metrics[name])
        worst[name] = max(worst.get(name, 0.0), abs(a - b) / max(abs(a), 1e-6))
    for part in ('params', 'batch_stats', 'opt_state'):
      a = jax.tree.leaves(jax.tree.map(lambda x: np.asarray(x[0]), getattr(by_pmap, part)))
      b = jax.tree.leaves(jax.device_get(getattr(by_jit, part)))
      worst[part] = max(float(np.max(np.abs(x.astype(np.float64) - y)) /
                              max(float(np.max(np.abs(x))), 1e-6)) for x, y in zip(a, b))
    print('RESULT', ' '.join(f'{{k}}={{v:.3g}}' for k, v in worst.items()))
""")


def test_jit_step_on_four_devices_equals_the_pmap_step():
  line = _on_four_devices(_JIT_AND_PMAP)
  worst = {k: float(v) for k, v in (item.split('=') for item in line.split()[1:])}
  # Relative to each quantity's largest magnitude: float32 rounding of the same sums.
  assert all(v < 1e-5 for v in worst.values()), line


def test_bfloat16_compute_keeps_float32_state_and_follows_float32_gradients():
  config = tiny_config()
  state = ts.create_train_state(jax.random.PRNGKey(0), config)
  batch = {k: v[0] for k, v in fake_batch(3, 1, 1, frames=2).items()}
  rng = jax.random.PRNGKey(1)
  outs = {}
  for dtype in ('float32', 'bfloat16'):
    grad_fn = jax.jit(functools.partial(ts.compute_gradients, config=tiny_config(dtype=dtype)))
    outs[dtype] = grad_fn(state.params, state.batch_stats, batch, rng)
  grads, stats, metrics = outs['bfloat16']
  for tree in (grads, stats):
    assert {x.dtype for x in jax.tree.leaves(tree)} <= {jnp.dtype('float32'), jnp.dtype('int32')}
  assert metrics['loss'].dtype == jnp.float32
  flat = lambda g: np.concatenate([np.ravel(x) for x in jax.tree.leaves(g)])
  a, b = flat(outs['float32'][0]), flat(grads)
  cosine = float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
  assert cosine > 0.95, cosine
  assert abs(float(metrics['loss']) / float(outs['float32'][2]['loss']) - 1) < 0.05
  with pytest.raises(ValueError, match='config.dtype'):
    ts.create_train_state(jax.random.PRNGKey(0), tiny_config(dtype='float16'))
  # The layers compute in bf16; the superfeatures the losses and the memory take stay float32.
  with backbone.compute_dtype('bfloat16'):
    out, _ = shls.embed(
      {'params': state.params, 'batch_stats': state.batch_stats},
      batch['image'][0],
      batch['spx'][0],
      num_segments=batch['pools'].shape[-1],
    )
  assert out['superfeatures'].dtype == jnp.float32
