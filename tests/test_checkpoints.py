"""Checkpoint files: orbax directories, reference .pth files and the conversion tool."""

import jax
import numpy as np
import pytest

from shls_jax import checkpoints


def _assert_same(a, b):
  flat_a = jax.tree_util.tree_flatten_with_path(a)[0]
  flat_b = dict(jax.tree_util.tree_flatten_with_path(b)[0])
  assert len(flat_a) == len(flat_b)
  for path, leaf in flat_a:
    np.testing.assert_array_equal(np.asarray(leaf), np.asarray(flat_b[path]))


CONVERT = 'shls_jax.tools.convert'


def test_pth_to_orbax_to_pth_is_lossless(parity_dir, tmp_path, command):
  src = parity_dir / 'checkpoint.pth'
  assert command(CONVERT, '--src', src, '--dst', tmp_path / 'ckpt').returncode == 0
  assert command(CONVERT, '--src', tmp_path / 'ckpt', '--dst', tmp_path / 'out.pth').returncode == 0
  _assert_same(checkpoints.load_variables(src), checkpoints.load_variables(tmp_path / 'out.pth'))
  _assert_same(checkpoints.load_variables(src), checkpoints.load_variables(tmp_path / 'ckpt'))


def test_existing_outputs_are_kept_without_overwrite(parity_dir, tmp_path, command):
  src = parity_dir / 'checkpoint.pth'
  dst = tmp_path / 'out.pth'
  dst.write_bytes(b'mine')
  refused = command(CONVERT, '--src', src, '--dst', dst)
  assert refused.returncode == 1 and dst.read_bytes() == b'mine'
  assert refused.stderr.strip().startswith('error:') and '--overwrite' in refused.stderr
  assert 'Traceback' not in refused.stderr
  assert command(CONVERT, '--src', src, '--dst', tmp_path / 'c').returncode == 0
  assert command(CONVERT, '--src', src, '--dst', tmp_path / 'c').returncode == 1
  assert command(CONVERT, '--src', src, '--dst', tmp_path / 'c', '--overwrite').returncode == 0


def test_bad_paths_give_clear_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match='no checkpoint'):
    checkpoints.load_variables(tmp_path / 'absent')
  (tmp_path / 'empty').mkdir()
  with pytest.raises(FileNotFoundError, match='holds no orbax checkpoint'):
    checkpoints.load_variables(tmp_path / 'empty')
  (tmp_path / 'weights.npz').write_bytes(b'x')
  with pytest.raises(ValueError, match='expected a PyTorch checkpoint'):
    checkpoints.load_variables(tmp_path / 'weights.npz')


def test_quiet_orbax_logging_keeps_warnings_and_other_info():
  import logging
  import os

  from absl import logging as absl_logging

  handler = absl_logging.get_absl_handler()
  checkpoints.quiet_orbax_logging()
  filters = list(handler.filters)
  checkpoints.quiet_orbax_logging()
  assert handler.filters == filters  # a second call adds nothing

  def record(level, path):
    return logging.LogRecord('absl', level, path, 1, 'message', None, None)

  orbax_file = os.path.join('site-packages', 'orbax', 'checkpoint', 'checkpoint_manager.py')
  assert not handler.filter(record(logging.INFO, orbax_file))
  assert handler.filter(record(logging.WARNING, orbax_file))
  assert handler.filter(record(logging.INFO, os.path.join('shls_jax', 'train.py')))
