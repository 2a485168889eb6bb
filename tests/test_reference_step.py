"""The reference training step: parity of one iteration with the recorded `train.*` stages, loss
switches, and frozen module groups (zero gradients and updates, unchanged BatchNorm statistics)."""

import jax
import numpy as np
import optax
import pytest

from shls_jax.parity import reference as parity
from shls_jax.parity import stages, training
from shls_jax.training import defaults as step_defaults
from shls_jax.training import optimizer, reference_step


@pytest.fixture(scope='module', params=['v1', 'v2'])
def reference(request, parity_references):
  """Each parity directory that holds the training iteration in float32 and float64."""
  return parity_references(request.param)


@pytest.fixture(scope='module')
def step(parity_reference):
  return training.run_iteration(parity_reference)


def test_forward_stages(reference):
  outputs = training.forward_stages(reference)
  expected = {
    k for k in reference.vectors if k.startswith('train.frame') or k == 'train.spx_merged0'
  }
  assert set(outputs) == expected
  assert not parity.failures(outputs, reference.vectors)


def test_losses_and_running_statistics(reference):
  outputs = {**training.loss_stages(reference), **training.running_statistics_stages(reference)}
  expected = {k for k in reference.vectors if k.startswith(('train.loss_', 'train.bn_running_'))}
  assert set(outputs) == expected
  assert 'train.bn_running_var.segmenter.RF1.ResMM.conv2.1' in outputs
  assert not parity.failures(outputs, reference.vectors)


def test_float64_iteration_matches_tightly(reference):
  outputs = training.float64_stages(reference)
  assert set(outputs) == {k for k in reference.vectors if k.startswith('train64.')}
  assert not parity.failures(outputs, reference.vectors)
  floor = parity.gradient_floor(reference.vectors)
  worst = max(
    parity.relative_error(v, reference.vectors[k], floor)
    for k, v in outputs.items()
    if k.startswith('train64.grad.')
  )
  # Orders of magnitude below the float32 noise of the same gradients (up to 5.5e-2 on v2).
  assert worst < parity.FLOAT64_TOLERANCE


def test_float32_gradients_within_measured_noise(reference):
  outputs = {**training.gradient_stages(reference), **training.float64_stages(reference)}
  assert {k for k in outputs if k.startswith('train.grad')} == {
    k for k in reference.vectors if k.startswith('train.grad')
  }
  assert not parity.failures(outputs, reference.vectors)


def test_tool_gives_the_same_verdict_and_writes_every_stage(reference, tmp_path, capsys):
  out = tmp_path / 'training.npz'
  assert stages.run_groups(reference, training.STAGE_GROUPS, str(out))
  printed = capsys.readouterr().out
  assert 'FAIL' not in printed and 'bound' in printed
  with np.load(out) as f:
    written = set(f.files)
  assert written == {
    k for k in reference.vectors if k.startswith(('train.', 'train64.')) and 'triplets' not in k
  }


def test_gradient_norm_order_is_pytorch_parameter_order(reference):
  import json

  from shls_jax.checkpoints.torch_interop import variables_to_arrays

  manifest = json.loads((reference.directory / 'manifest.json').read_text())
  names = list(variables_to_arrays({'params': reference.variables['params'], 'batch_stats': {}}))
  assert names == manifest['param_names']


def test_switching_off_a_loss_removes_its_term(parity_reference, step):
  params, stats = (parity_reference.variables['params'], parity_reference.variables['batch_stats'])
  for options, kept in (
    (reference_step.StepOptions(ntxent=False), 'ce'),
    (reference_step.StepOptions(ce=False), 'ntxent'),
  ):
    loss, terms, grads = reference_step.gradients(params, stats, step.constants, options)
    np.testing.assert_allclose(float(loss), float(getattr(terms, kept)), rtol=1e-6)
    # The superfeature heads reach only NT-Xent, the decoder only CE.
    silent = 'segmenter' if kept == 'ntxent' else 'sf_head_L1'
    assert all(not np.any(np.asarray(g)) for g in jax.tree_util.tree_leaves(grads[silent]))
    assert np.any(np.asarray(grads['spx_embedding']['feat_extractor']['conv1']['0']['kernel']))
  np.testing.assert_allclose(float(step.loss), float(step.ntxent + step.ce), rtol=1e-6)


def _tiny_sequence():
  """Two 32x32 frames, 4x4-pixel superpixels, a square object that moves by 2 pixels."""
  rng = np.random.default_rng(0)
  images = rng.normal(size=(2, 32, 32, 3)).astype(np.float32)
  spx = np.broadcast_to(
    (np.arange(32)[:, None] // 4) * 8 + np.arange(32)[None, :] // 4 + 1, (2, 32, 32)
  ).astype(np.int32)
  labels = np.ones((2, 32, 32), np.int32)
  labels[0, 8:20, 8:20] = 2
  labels[1, 10:22, 10:22] = 2
  return images, spx, labels


def test_frozen_groups_get_no_update_and_keep_statistics(parity_reference):
  options = reference_step.StepOptions(frozen={'modulator', 'decoder'})
  variables = parity_reference.variables
  config = step_defaults.get_config()
  config.frozen = ('modulator', 'decoder')
  tx = optimizer.create_optimizer(variables['params'], config)
  result = reference_step.reference_step(
    variables, *_tiny_sequence(), 2, rng=np.random.default_rng(0), options=options
  )
  updates, _ = tx.update(result.grads, tx.init(variables['params']), variables['params'])
  new = {
    'params': optax.apply_updates(variables['params'], updates),
    'batch_stats': result.batch_stats,
  }
  for group in ('mem_select', 'segmenter'):
    assert all(not np.any(np.asarray(g)) for g in jax.tree_util.tree_leaves(result.grads[group]))
    for old, updated in zip(
      jax.tree_util.tree_leaves(variables['params'][group]),
      jax.tree_util.tree_leaves(new['params'][group]),
    ):
      np.testing.assert_array_equal(np.asarray(old), np.asarray(updated))
  for old, updated in zip(
    jax.tree_util.tree_leaves(variables['batch_stats']['segmenter']),
    jax.tree_util.tree_leaves(new['batch_stats']['segmenter']),
  ):
    np.testing.assert_array_equal(np.asarray(old), np.asarray(updated))
  # The embedding still trains: its parameters and statistics move.
  old_l1 = np.asarray(variables['params']['sf_head_L1']['0']['kernel'])
  assert np.any(np.asarray(new['params']['sf_head_L1']['0']['kernel']) != old_l1)
  old_mean = variables['batch_stats']['spx_embedding']['feat_extractor']['conv1']['1']['mean']
  new_mean = new['batch_stats']['spx_embedding']['feat_extractor']['conv1']['1']['mean']
  assert np.any(np.asarray(old_mean) != np.asarray(new_mean))


def test_bad_options_and_inputs_are_refused():
  with pytest.raises(ValueError, match='unknown frozen groups'):
    reference_step.StepOptions(frozen={'everything'})
  with pytest.raises(ValueError, match="'backbone' and 'heads' instead"):
    reference_step.StepOptions(frozen={'embedding'})
  with pytest.raises(ValueError, match='freeze both or neither'):
    reference_step.StepOptions(frozen={'backbone'})
  images, spx, labels = _tiny_sequence()
  with pytest.raises(ValueError, match=r'\[T, H, W, 3\]'):
    reference_step.forward({}, images[..., :2], spx, labels, 2)
  with pytest.raises(ValueError, match='labels must lie'):
    reference_step.forward({}, images, spx, labels + 1, 2)


def test_release_compiled_empties_the_per_shape_caches():
  reference_step.release_compiled()
  assert reference_step._gradients._cache_size() == 0
  assert reference_step._decode_object._cache_size() == 0
