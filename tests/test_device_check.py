"""The prepared accelerator check runs end to end at toy sizes (`--smoke`) on the CPU."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_device_check_smoke(tmp_path):
  out = tmp_path / 'device_check.md'
  done = subprocess.run(
    [sys.executable, str(ROOT / 'benchmarks' / 'device_check.py'), '--smoke', '--out', str(out)],
    cwd=ROOT,
    env=dict(os.environ, JAX_PLATFORMS='cpu'),
    capture_output=True,
    text=True,
    timeout=1500,
  )
  assert done.returncode == 0, done.stderr[-3000:]
  table = out.read_text()
  for item in (
    'superfeatures (embedding), highest',
    'decoder pixels whose mask changes',
    'training step loss, gradients',
    'fast, device memory, engine',
    'exact, device memory, end to end',
    'pmap step 64x64 (smoke), T=3, batch/device 1',
    'jit step (Mesh, NamedSharding) 64x64 (smoke)',
    'pmap step, bfloat16 compute 64x64 (smoke)',
    'pmap step, superpixels in the step 64x64 (smoke)',
    'loop against step alone',
  ):
    assert item in table, item
  # On the CPU both sides of the comparison are the same backend: zero error.
  row = next(line for line in table.splitlines() if 'decoder logits (32x32 crop), highest' in line)
  assert row.split('|')[3].strip() == '0'
