"""Network stages against the PyTorch reference vectors: embedding, superfeatures of every frame,
feature modulator and decoder per object, train-mode embedding and its BatchNorm statistics."""

import numpy as np
import pytest

from shls_jax.parity import network
from shls_jax.parity import reference as parity


@pytest.fixture(scope='module')
def reference(parity_reference):
  return parity_reference


def _assert_reproduced(outputs, reference):
  lines = parity.failures(outputs, reference.vectors)
  assert not lines, '\n'.join(lines)


def test_embedding(reference):
  outputs = network.embedding_stages(reference)
  assert set(outputs) == {'embed.feat_l1', 'embed.feat_l4', 'embed.spx_l4', 'embed.superfeatures'}
  _assert_reproduced(outputs, reference)


def test_superfeatures_of_every_frame(reference):
  outputs = network.frame_superfeature_stages(reference)
  frames = reference.vectors['image'].shape[0]
  assert set(outputs) == {f'frame{n}.superfeatures' for n in range(1, frames)}
  _assert_reproduced(outputs, reference)


def test_modulator_and_decoder(reference):
  outputs = network.decoder_stages(reference)
  recorded = {k for k in reference.vectors if k.endswith('.out')}
  assert recorded and set(outputs) == recorded
  _assert_reproduced(outputs, reference)


def test_train_mode_embedding_and_running_statistics(reference):
  outputs = network.train_embedding_stages(reference)
  assert 'train.bn_running_var.sf_head_L4.1' in outputs
  assert 'train.bn_running_mean.spx_embedding.feat_extractor.layer4.1.left.4' in outputs
  _assert_reproduced(outputs, reference)


def _compare(key, ours, reference, **stored):
  return parity.compare_stage(key, {key: ours}, {key: reference, **stored})


def test_compare_reports_failures():
  ok, line = _compare('x', np.array([1.0, 2.0]), np.array([1.0, 2.1]))
  assert not ok and 'FAIL' in line
  ok, line = _compare('y', np.array([1, 2, 3]), np.array([1, 5, 3]))
  assert not ok and ' 1 ' in line
  assert _compare('z', np.zeros(3, np.float32), np.zeros(3, np.float32))[0]
  ok, line = _compare('x', np.zeros(2), np.zeros(3))
  assert not ok and 'shape' in line


def test_float32_gradient_bound_grows_with_measured_noise():
  key, key64 = 'train.grad.segmenter.pred.bias', 'train64.grad.segmenter.pred.bias'
  reference, ours = np.array([1.0, -2.0]), np.array([1.0, -2.01])  # 5e-3 relative
  # Without float64 stages: the plain tolerance.
  assert not _compare(key, ours, reference)[0]
  # Both sides 1e-3 (relative to max |reference| = 2) away from their float64 gradients:
  # bound 1e-3 + 2 x (1e-3 + 1e-3) = 5e-3 (4.99e-3 as the noise is relative to the float64
  # gradient), which an error of 5e-3 does not meet.
  noisy = {key64: np.array([1.0, -2.002])}
  outputs = {key: ours, key64: np.array([1.0, -2.012])}
  ok, line = parity.compare_stage(key, outputs, {key: reference, **noisy})
  assert not ok and 'bound 4.986e-03' in line, line
  outputs[key64] = np.array([1.0, -2.016])  # our noise 3e-3: bound 9e-3
  ok, line = parity.compare_stage(key, outputs, {key: reference, **noisy})
  assert ok, line
  # A float64 gradient is held to FLOAT64_TOLERANCE, whatever the float32 noise.
  assert not _compare(key64, np.array([1.0, -2.0001]), reference)[0]
  assert _compare(key64, np.array([1.0, -2.000001]), reference)[0]
  assert not _compare('frame1.pred', ours, reference)[0]
