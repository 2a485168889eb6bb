"""Training loop: one real step, kill-and-resume, 2-process jax.distributed, PyTorch export,
frozen modules, and the train checkpoints read back by `evaluate.py`."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from configs import demo
from shls_jax import checkpoints
from shls_jax.data import synthetic
from shls_jax.evaluation import evaluator
from shls_jax.training import curves, loop
from shls_jax.training import train_step as train_step_lib

REPO = Path(__file__).resolve().parents[1]
# Overrides shared by the in-process runs and the command-line runs: tiny frames and capacities.
TINY = {
  'data.image_size': (32, 32),
  'data.seq_len': 2,
  'data.slic_segments': 12,
  'data.superpixel_capacity': 32,
  'data.num_parallel_calls': 1,
  'step.crop_size': (16, 16),
  'step.object_capacity': 2,
  'step.kmeans_iterations': 2,
  'checkpoint_every_steps': 2,
  'log_every_steps': 1,
  'eval_at_start': False,
  'eval.davis_root': '',
}


@pytest.fixture(scope='module')
def stills_root(tmp_path_factory):
  root = tmp_path_factory.mktemp('stills')
  synthetic.write_stills(root, num_images=6, size=(40, 48), seed=0)
  return root


def _config(stills_root, **overrides):
  config = demo.get_config()
  for key, value in {**TINY, 'data.root': str(stills_root), **overrides}.items():
    *blocks, leaf = key.split('.')
    node = config
    for block in blocks:
      node = node[block]
    node[leaf] = value
  return config


def _variables(state):
  return {'params': state.params, 'batch_stats': state.batch_stats}


def _evaluated(state):
  """What validation and export use: the moving averages (the demo config keeps them)."""
  return train_step_lib.evaluated_variables(state)


def _assert_trees_close(a, b, atol=1e-6):
  jax.tree.map(
    lambda x, y: np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=atol, rtol=0), a, b
  )


@pytest.fixture(scope='module')
def uninterrupted(stills_root, tmp_path_factory):
  workdir = tmp_path_factory.mktemp('uninterrupted')
  config = _config(stills_root, num_train_steps=4, export_torch=str(workdir / 'final.pth'))
  return workdir, loop.train_and_evaluate(config, workdir)


@pytest.fixture(scope='module')
def interrupted(stills_root, tmp_path_factory):
  workdir = tmp_path_factory.mktemp('interrupted')
  first = loop.train_and_evaluate(_config(stills_root, num_train_steps=2), workdir)
  second = loop.train_and_evaluate(_config(stills_root, num_train_steps=4), workdir)
  return workdir, first, second


def test_real_steps_write_checkpoints_and_scalars(stills_root, interrupted):
  workdir, first, _ = interrupted
  assert int(first.step) == 2
  assert checkpoints.latest_step(workdir / loop.CHECKPOINT_DIR) == 4
  assert list((workdir / loop.TENSORBOARD_DIR).glob('events.out.tfevents.*'))
  initial = loop.initial_state(_config(stills_root))
  assert not np.allclose(
    first.params['segmenter']['pred']['kernel'], initial.params['segmenter']['pred']['kernel']
  )


def test_resume_gives_the_uninterrupted_state(interrupted, uninterrupted):
  _, _, resumed = interrupted
  _, straight = uninterrupted
  assert int(resumed.step) == int(straight.step) == 4
  _assert_trees_close(resumed.params, straight.params)
  _assert_trees_close(resumed.batch_stats, straight.batch_stats)
  _assert_trees_close(resumed.opt_state, straight.opt_state)
  _assert_trees_close(resumed.ema, straight.ema)


def test_moving_average_is_kept_beside_the_last_iterate(uninterrupted):
  _, state = uninterrupted
  assert state.ema is not None
  kernel = state.params['segmenter']['pred']['kernel']
  assert not np.allclose(state.ema['params']['segmenter']['pred']['kernel'], kernel)


def test_export_torch_reads_back_identical(uninterrupted):
  workdir, state = uninterrupted
  _assert_trees_close(checkpoints.load_variables(workdir / 'final.pth'), _evaluated(state), atol=0)


def test_evaluate_reads_the_train_checkpoints(uninterrupted):
  workdir, state = uninterrupted
  directory = str(workdir / loop.CHECKPOINT_DIR)
  _assert_trees_close(checkpoints.load_variables(directory), _evaluated(state), atol=0)
  _assert_trees_close(
    checkpoints.load_variables(directory, average=False), _variables(state), atol=0
  )


def test_existing_export_is_not_overwritten(stills_root, uninterrupted, tmp_path):
  workdir, _ = uninterrupted
  config = _config(stills_root, num_train_steps=1, export_torch=str(workdir / 'final.pth'))
  with pytest.raises(FileExistsError, match='overwrite'):
    loop.train_and_evaluate(config, tmp_path)


def test_validation_reports_the_baseline_and_the_curve(stills_root, tmp_path, capsys):
  videos = tmp_path / 'videos'
  synthetic.write_videos(videos, num_videos=2, num_frames=4, num_objects=1, size=(32, 32), seed=1)
  config = _config(
    stills_root,
    num_train_steps=2,
    eval_at_start=True,
    **{'eval.davis_root': str(videos), 'eval.superpixels.slic_segments': 20},
  )
  workdir = tmp_path / 'run'
  loop.train_and_evaluate(config, workdir)
  copy = evaluator.Evaluator(config, tmp_path / 'copy', weights='copy-first-mask', progress=False)
  baseline = dict(copy.run_baseline())['J&F-Mean']
  rows = curves.read_curve(workdir / curves.CURVE_CSV)
  assert [r['step'] for r in rows] == [0, 2]
  assert all(r['baseline J&F-Mean'] == baseline for r in rows)
  assert 0.0 <= rows[1]['J&F-Mean'] <= 1.0 and 'loss' in rows[1] and 'loss' not in rows[0]
  assert (workdir / curves.CURVE_PNG).is_file()
  printed = capsys.readouterr().out
  assert f'Copy-first-mask baseline J&F-Mean on the same sequences: {baseline:.4f}' in printed
  assert str(workdir / curves.CURVE_PNG) in printed


def test_nan_loss_stops_with_a_clear_error(tmp_path):
  with pytest.raises(FloatingPointError, match='loss is nan at step 7'):
    loop._check_finite({'loss': float('nan')}, 7, tmp_path)  # pylint: disable=protected-access


def _free_port():
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _train_two_processes(workdir, overrides):
  """Runs train.py in two jax.distributed processes (one CPU device each) to completion."""
  port = _free_port()
  flags = [f'--config.{k}={v}' for k, v in overrides.items()]
  env = dict(os.environ, JAX_PLATFORMS='cpu', PYTHONPATH=str(REPO))
  procs = [
    subprocess.Popen(
      [
        sys.executable,
        str(REPO / 'train.py'),
        '--config',
        str(REPO / 'configs/demo.py'),
        '--workdir',
        str(workdir),
        '--distributed',
        f'--coordinator_address=127.0.0.1:{port}',
        '--num_processes=2',
        f'--process_id={i}',
        *flags,
      ],
      cwd=REPO,
      env=env,
      stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT,
      text=True,
    )
    for i in range(2)
  ]
  outputs = []
  try:
    for proc in procs:
      outputs.append(proc.communicate(timeout=420)[0])
  finally:
    for proc in procs:
      proc.kill()
  for proc, output in zip(procs, outputs):
    assert proc.returncode == 0, output[-3000:]


_DISTRIBUTED = {'num_train_steps': 2, 'step.frozen': ('modulator', 'decoder')}


@pytest.fixture(scope='module')
def distributed_run(stills_root, tmp_path_factory):
  """Two jax.distributed processes train two steps with the decoder frozen; returns (workdir,
  config). One run checks both the distributed loop and freezing."""
  workdir = tmp_path_factory.mktemp('distributed')
  _train_two_processes(workdir, {**TINY, 'data.root': str(stills_root), **_DISTRIBUTED})
  return workdir, _config(stills_root, **{'step.frozen': ('modulator', 'decoder')})


def test_two_processes_train_two_steps(distributed_run):
  workdir, _ = distributed_run
  assert checkpoints.latest_step(workdir / loop.CHECKPOINT_DIR) == 2


def test_frozen_modules_do_not_change(distributed_run):
  workdir, config = distributed_run
  initial = loop.initial_state(config)
  trained = checkpoints.load_variables(workdir / loop.CHECKPOINT_DIR)
  for name in ('mem_select', 'segmenter'):
    _assert_trees_close(trained['params'][name], initial.params[name], atol=0)
    _assert_trees_close(
      trained['batch_stats'].get(name, {}), initial.batch_stats.get(name, {}), atol=0
    )
  changed = jax.tree.map(
    lambda x, y: not np.array_equal(x, y),
    trained['params']['spx_embedding'],
    initial.params['spx_embedding'],
  )
  assert any(jax.tree.leaves(changed))


def test_jit_step_on_two_processes_equals_the_pmap_step(distributed_run, stills_root, tmp_path):
  workdir, _ = distributed_run
  overrides = {**TINY, 'data.root': str(stills_root), **_DISTRIBUTED, 'step.parallel': 'jit'}
  _train_two_processes(tmp_path, overrides)
  by_pmap = checkpoints.load_variables(workdir / loop.CHECKPOINT_DIR)
  by_jit = checkpoints.load_variables(tmp_path / loop.CHECKPOINT_DIR)
  _assert_trees_close(by_jit, by_pmap, atol=1e-5)


def test_superpixels_in_the_jit_step(stills_root, tmp_path):
  config = _config(
    stills_root, num_train_steps=2, **{'data.superpixels_in_step': True, 'step.parallel': 'jit'}
  )
  state = loop.train_and_evaluate(config, tmp_path)
  assert int(state.step) == 2
  assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(state.params))
  assert checkpoints.latest_step(tmp_path / loop.CHECKPOINT_DIR) == 2


def test_reference_mode_refuses_superpixels_in_step(stills_root, tmp_path):
  config = _config(
    stills_root, num_train_steps=1, step_mode='reference', **{'data.superpixels_in_step': True}
  )
  with pytest.raises(ValueError, match='superpixels_in_step=False'):
    loop.train_and_evaluate(config, tmp_path)
