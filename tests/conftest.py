"""Shared pytest fixtures: locations of the reference material in ../shared (skipped when absent)."""

import os
from pathlib import Path

import pytest

os.environ.setdefault('JAX_PLATFORMS', 'cpu')

SHARED = Path(os.environ.get('SHLS_SHARED', Path(__file__).resolve().parents[2] / 'shared'))


def _require(path: Path) -> Path:
  if not path.exists():
    pytest.skip(f'{path} is absent: reference material lives in ../shared next to the clone')
  return path


@pytest.fixture(scope='session')
def parity_dir() -> Path:
  """`../shared/parity/v1`: checkpoint, inputs and stage outputs of the PyTorch reference."""
  return _require(SHARED / 'parity' / 'v1')


@pytest.fixture(scope='session')
def parity_vectors(parity_dir):
  import numpy as np

  with np.load(parity_dir / 'vectors.npz') as f:
    return {k: f[k] for k in f.files}


@pytest.fixture(scope='session')
def parity_references():
  """`load(name)`: the parity directory `../shared/parity/<name>` with its checkpoint loaded
  (`shls_jax.parity.reference.Reference`), one per name for the whole session so that its jitted
  embedding compiles once and its training iterations run once."""
  from shls_jax.parity import reference as parity

  loaded = {}

  def load(name: str):
    if name not in loaded:
      loaded[name] = parity.Reference.load(_require(SHARED / 'parity' / name))
    return loaded[name]

  return load


@pytest.fixture(scope='session')
def parity_reference(parity_references):
  """The `v1` parity directory, loaded (see `parity_references`)."""
  return parity_references('v1')


@pytest.fixture(scope='session')
def davis_sample() -> Path:
  """`../shared/data/davis2016-sample`: five DAVIS-2016 val sequences in the official layout."""
  return _require(SHARED / 'data' / 'davis2016-sample')


@pytest.fixture
def noise_video():
  """`make(T)`: (frames [T, 48, 64, 3] uint8 noise, superpixels [T, 48, 64] int32 of 8x8
  blocks, labels 1..48), a video any engine setting runs in seconds."""
  import numpy as np

  def make(num_frames: int):
    frames = np.random.default_rng(0).integers(0, 255, (num_frames, 48, 64, 3), dtype=np.uint8)
    blocks = (np.arange(48)[:, None] // 8) * 8 + np.arange(64)[None, :] // 8 + 1
    return frames, np.broadcast_to(blocks, (num_frames, 48, 64)).astype(np.int32)

  return make


@pytest.fixture(scope='session')
def command():
  """`run(module, *args, timeout=600)`: `python -m <module> <args>` in the repository on CPU JAX,
  as a user runs a command (`subprocess.CompletedProcess` with text output). Commands define
  their absl flags when they run, so tests run them in their own process."""
  import subprocess
  import sys

  repo = Path(__file__).resolve().parents[1]

  def run(module: str, *args, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
      [sys.executable, '-m', module, *map(str, args)],
      cwd=repo,
      env=dict(os.environ, JAX_PLATFORMS='cpu'),
      capture_output=True,
      text=True,
      timeout=timeout,
    )

  return run
