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
  assert set(outputs) == {'embed.feat_l1', 'embed.feat_l4', 'embed.spx_l4',
                          'embed.superfeatures'}
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


def test_compare_reports_failures():
  ok, line = parity.compare('x', np.array([1.0, 2.0]), np.array([1.0, 2.1]))
  assert not ok and 'FAIL' in line
  ok, line = parity.compare('y', np.array([1, 2, 3]), np.array([1, 5, 3]))
  assert not ok and ' 1 ' in line
  assert parity.compare('z', np.zeros(3, np.float32), np.zeros(3, np.float32))[0]


def test_only_float32_sensitive_gradients_get_the_wider_limit():
  reference, ours = np.array([1.0, -2.0]), np.array([1.0, -2.01])  # 5e-3 relative
  sensitive = parity.FLOAT32_SENSITIVE_GRADIENTS[0] + '0.left.1.bias'
  ok, line = parity.compare(sensitive, ours, reference, floor=1e-3)
  assert ok and 'float32-sensitive' in line
  assert not parity.compare(sensitive, np.array([1.0, -2.1]), reference, floor=1e-3)[0]
  assert not parity.compare('train.grad.mem_select.convAM.bias', ours, reference, floor=1e-3)[0]
  assert not parity.compare('frame1.pred', ours, reference)[0]
