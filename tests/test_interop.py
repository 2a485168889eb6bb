"""PyTorch checkpoint interop: exact export of the reference checkpoint, bit-identical round
trips, and clear errors on damaged checkpoints."""

import jax
import numpy as np
import pytest
from flax.traverse_util import flatten_dict

torch = pytest.importorskip('torch')

from shls_jax.checkpoints import torch_interop as tc  # noqa: E402  (after the torch skip)


@pytest.fixture(scope='module')
def reference_state(parity_dir):
  return torch.load(parity_dir / 'checkpoint.pth', weights_only=True)['model']


@pytest.fixture(scope='module')
def variables(parity_dir):
  return tc.load_torch_checkpoint(parity_dir / 'checkpoint.pth')


def _assert_same_variables(a, b):
  fa, fb = flatten_dict(a), flatten_dict(b)
  assert fa.keys() == fb.keys()
  for k in fa:
    x, y = np.asarray(fa[k]), np.asarray(fb[k])
    assert x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y), k


def test_export_equals_reference_checkpoint(variables, reference_state):
  exported = tc.variables_to_state_dict(variables)
  assert list(exported) == list(reference_state)
  for k, ref in reference_state.items():
    assert exported[k].dtype == ref.dtype and exported[k].shape == ref.shape, k
    assert torch.equal(exported[k], ref), k


def test_round_trip_flax_torch_flax(variables):
  rng = np.random.default_rng(0)
  changed = jax.tree_util.tree_map(
    lambda x: (
      (x + rng.integers(0, 9, x.shape)).astype(x.dtype)
      if x.dtype == np.int32
      else rng.standard_normal(x.shape).astype(np.float32)
    ),
    variables,
  )
  back = tc.arrays_to_variables(tc.variables_to_state_dict(changed, prefix=''), changed)
  _assert_same_variables(back, changed)


@pytest.mark.parametrize('prefix, wrap', [('module.', True), ('', True), ('module.', False)])
def test_save_and_load_file(variables, tmp_path, prefix, wrap):
  path = tmp_path / 'ckpt.pth'
  if wrap:
    tc.save_torch_checkpoint(path, variables, epoch=3, prefix=prefix)
    saved = torch.load(path, weights_only=True)
    assert saved['epoch'] == 3 and set(saved) == {
      'model',
      'epoch',
      'top_iou',
      'global_ite',
      'test_ite',
    }
  else:
    torch.save(tc.variables_to_state_dict(variables, prefix), path)
  _assert_same_variables(tc.load_torch_checkpoint(path, variables), variables)


def test_damaged_state_dict_lists_every_problem(reference_state, variables, tmp_path):
  damaged = dict(reference_state)
  del damaged['module.segmenter.pred.bias']
  damaged['module.segmenter.extra.weight'] = torch.zeros(3)
  damaged['module.sf_head_L1.0.weight'] = torch.zeros(32, 66)
  path = tmp_path / 'damaged.pth'
  torch.save({'model': damaged}, path)
  with pytest.raises(ValueError) as info:
    tc.load_torch_checkpoint(path, variables)
  message = str(info.value)
  assert str(path) in message
  assert 'missing (1): segmenter.pred.bias' in message
  assert 'unexpected (1): segmenter.extra.weight' in message
  assert 'sf_head_L1.0.weight: (32, 66) instead of (32, 67)' in message


def test_unreadable_files(tmp_path, variables):
  garbage = tmp_path / 'garbage.pth'
  garbage.write_bytes(b'this is not a checkpoint')
  with pytest.raises(ValueError, match='cannot read checkpoint .*garbage.pth'):
    tc.load_torch_checkpoint(garbage, variables)
  with pytest.raises(FileNotFoundError, match='absent.pth'):
    tc.load_torch_checkpoint(tmp_path / 'absent.pth', variables)
