"""Superpixel pooling and superfeature heads: means, info maps, empty and vanishing
superpixels, label checks, and the closed-form running statistics of the heads."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.traverse_util import flatten_dict, unflatten_dict

from shls_jax.model import superfeatures as sfm
from shls_jax.model.shls import SHLS, init_variables


@pytest.fixture(scope='module')
def variables():
  """Random variables built from the variable shapes (no costly init run)."""
  template = jax.eval_shape(init_variables, jax.random.PRNGKey(0))
  rng = np.random.default_rng(0)
  flat = {}
  for path, leaf in flatten_dict(template).items():
    if path[-1] == 'num_batches_tracked':
      flat[path] = np.zeros((), np.int32)
    elif path[-1] == 'var':
      flat[path] = rng.uniform(0.5, 1.5, leaf.shape).astype(np.float32)
    else:
      flat[path] = (0.1 * rng.standard_normal(leaf.shape)).astype(np.float32)
  return unflatten_dict(flat)


@pytest.fixture(scope='module')
def embed_fn(variables):
  def run(image, spx, train):
    return SHLS().apply(
      variables,
      image,
      spx,
      num_segments=6,
      train=train,
      method=SHLS.embed,
      mutable=['batch_stats'] if train else False,
    )

  return jax.jit(run, static_argnums=2)


def _spx_16():
  """16x16 map with labels 1, 2, 4, 5 (3 is empty); label 5 is one pixel at (1, 1), which the
  nearest resize to 4x4 (rows/cols 0, 4, 8, 12) drops."""
  spx = np.ones((16, 16), np.int32)
  spx[8:, :] = 2
  spx[:, 10:] = 4
  spx[1, 1] = 5
  return spx[None]


def test_segment_means_match_masked_means():
  rng = np.random.default_rng(1)
  spx = rng.integers(0, 5, (2, 7, 9)).astype(np.int32)
  feats = rng.standard_normal((2, 7, 9, 3)).astype(np.float32)
  means, counts = sfm.segment_means(jnp.asarray(feats), jnp.asarray(spx), 6)
  for b in range(2):
    for n in range(1, 7):
      mask = spx[b] == n
      assert counts[b, n - 1] == mask.sum()
      want = feats[b][mask].mean(0) if mask.any() else np.zeros(3)
      np.testing.assert_allclose(means[b, n - 1], want, rtol=1e-6, atol=1e-6)


def test_info_map_values_and_label_zero():
  spx = np.array([[[1, 1, 0], [2, 2, 2]]], np.int32)
  info = np.asarray(sfm.info_map(jnp.asarray(spx), 3))
  np.testing.assert_allclose(info[0, 0, 0], [2 / 6, 0.0, 0.25])
  np.testing.assert_allclose(info[0, 1, 2], [3 / 6, 1.0, 0.5])
  np.testing.assert_array_equal(info[0, 0, 2], 0.0)


def test_empty_and_vanishing_superpixels(embed_fn, variables):
  out = embed_fn(
    jnp.asarray(np.random.default_rng(2).standard_normal((1, 16, 16, 3)), jnp.float32),
    jnp.asarray(_spx_16()),
    False,
  )
  sf = np.asarray(out['superfeatures'][0])
  np.testing.assert_array_equal(out['valid'][0], [True] * 5 + [False])
  np.testing.assert_array_equal(np.asarray(out['spx_l4'][0]) == 5, False)
  conv = variables['params']['sf_conv_1x1']['0']
  w_l1, bias = conv['kernel'][0, 0, 0, 0], conv['bias'][0]
  # Label 3 has no pixel anywhere: both heads give 0, so relu(bias) remains.
  np.testing.assert_allclose(sf[2], np.maximum(bias, 0.0) * np.ones(32), rtol=1e-6)
  # Label 5 vanishes at L4: only the L1 head contributes.
  means, counts = sfm.segment_means(out['feat_l1'], jnp.asarray(_spx_16()), 6)
  head = sfm.SuperfeatureHead().apply(
    {
      'params': variables['params']['sf_head_L1'],
      'batch_stats': variables['batch_stats']['sf_head_L1'],
    },
    means,
    counts > 0,
    False,
  )
  np.testing.assert_allclose(sf[4], np.maximum(w_l1 * head[0, 4] + bias, 0.0), rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(sf[5], 0.0)


def test_train_mode_updates_once_per_nonempty_superpixel(embed_fn):
  image = jnp.asarray(np.random.default_rng(3).standard_normal((1, 16, 16, 3)), jnp.float32)
  _, updated = embed_fn(image, jnp.asarray(_spx_16()), True)
  stats = updated['batch_stats']
  assert int(stats['sf_head_L1']['1']['num_batches_tracked']) == 4  # labels 1, 2, 4, 5
  assert int(stats['sf_head_L4']['1']['num_batches_tracked']) == 3  # label 5 vanished
  assert int(stats['spx_embedding']['feat_extractor']['conv1']['1']['num_batches_tracked']) == 1


def test_sequential_running_update_closed_form():
  rng = np.random.default_rng(4)
  batch = rng.standard_normal((2, 7)).astype(np.float32)
  valid = rng.random((2, 7)) > 0.3
  want = np.float32(0.7)
  for x, keep in zip(batch.reshape(-1), valid.reshape(-1)):
    if keep:
      want = np.float32(0.9) * want + np.float32(0.1) * x
  got = sfm.sequential_running_update(jnp.float32(0.7), jnp.asarray(batch), jnp.asarray(valid))
  np.testing.assert_allclose(got, want, rtol=1e-6)


@pytest.mark.parametrize(
  'spx, message',
  [
    (np.array([[1, 7]]), 'exceeds the capacity num_segments=6'),
    (np.array([[1, -1]]), 'must be >= 0'),
    (np.array([[1.0, 2.0]]), 'must be integers'),
  ],
)
def test_check_labels_errors(spx, message):
  with pytest.raises(ValueError, match=message):
    sfm.check_labels(spx, 6)
