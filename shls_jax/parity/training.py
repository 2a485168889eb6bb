"""Recomputes the reference training iteration (`train.*` of a parity directory) with
`shls_jax.training.reference_step` and compares every stage with the reference.

    shls-parity --vectors DIR --stages training

The iteration runs on the first T frames of DIR, T being the number of recorded
`train.triplets<t>` arrays, with those triplets. Stage groups are plain functions
`group(ref) -> {key: array}` in the layout of `vectors.npz` (NCHW, attention maps [4, h, w]);
they share one run of the iteration per `parity.Reference`. Tolerances are those of
`parity.compare_stage` (gradients relative to a floor, see `parity.gradient_floor`).

Where the directory holds the iteration in float64 (`train64.*`), `float64_stages` runs ours in
float64 too, in a subprocess because `jax_enable_x64` is process-wide:

    python -m shls_jax.parity.training DIR OUT.npz    # writes our train64.* stages to OUT.npz
"""

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable, Dict, Tuple

import jax
import numpy as np
from flax.traverse_util import flatten_dict

from shls_jax.checkpoints.torch_interop import variables_to_arrays
from shls_jax.parity import reference as parity
from shls_jax.training import reference_step

# One run of the iteration per Reference (by identity; the Reference is kept alive with it).
_RUNS: Dict[int, Tuple[parity.Reference, reference_step.StepResult]] = {}


def num_frames(ref: parity.Reference) -> int:
  """T: the frames of the recorded iteration (one `train.triplets<t>` per frame)."""
  frames = {
    int(m.group(1)) for m in map(re.compile(r'train\.triplets(\d+)').fullmatch, ref.vectors) if m
  }
  if not frames or frames != set(range(len(frames))):
    raise ValueError(f'train.triplets<t> must be recorded for t = 0..T-1; found {sorted(frames)}')
  return len(frames)


def run_iteration(ref: parity.Reference) -> reference_step.StepResult:
  """The reference step on the directory's first T frames with its recorded triplets, in JAX's
  default float dtype (variables and frames cast to it)."""
  if id(ref) not in _RUNS:
    v, t = ref.vectors, num_frames(ref)
    num_cls = v['train.frame1.pred'].shape[1]
    float_dtype = jax.dtypes.canonicalize_dtype(np.float64)
    variables = jax.tree_util.tree_map(
      lambda x: x.astype(float_dtype) if np.issubdtype(x.dtype, np.floating) else x, ref.variables
    )
    result = reference_step.reference_step(
      variables,
      np.moveaxis(v['image'][:t], 1, -1),
      v['spx'][:t],
      v['label'][:t],
      num_cls,
      triplets=[v[f'train.triplets{n}'] for n in range(t)],
    )
    _RUNS[id(ref)] = (ref, result)
  return _RUNS[id(ref)][1]


def _iteration_stages(result: reference_step.StepResult, stored, prefix: str):
  """The stages of one iteration under `prefix` ('train' or 'train64'): merged frame-0
  superpixels; per frame superfeatures, ROIs, attention maps, pre-segmentation, logits and
  confident flags; both losses; per-parameter gradient norms and the gradients that `stored`
  (the directory's keys) holds."""
  c, record = result.constants, result.record
  out = {f'{prefix}.spx_merged0': np.asarray(c.spx[0])}
  for t, boxes in enumerate(c.boxes):
    key = f'{prefix}.frame{t}'
    out[f'{key}.superfeatures'] = record.superfeatures[t]
    out[f'{key}.bbox'] = np.asarray(boxes, np.int32)
    for k, attmap in enumerate(c.attmaps[t]):
      out[f'{key}.attmap{k}'] = np.moveaxis(np.asarray(attmap), -1, 0)
    if t > 0:
      out[f'{key}.preseg'] = record.presegs[t - 1]
      out[f'{key}.pred'] = parity.to_nchw(record.preds[t - 1][None])
    if 0 < t < len(c.boxes) - 1:
      out[f'{key}.confident'] = record.confident[t - 1].astype(np.int32)
  out[f'{prefix}.loss_ntxent'] = np.asarray(result.ntxent)
  out[f'{prefix}.loss_ce'] = np.asarray(result.ce)
  grads = variables_to_arrays({'params': result.grads, 'batch_stats': {}})
  out[f'{prefix}.grad_norm'] = np.array(
    [np.linalg.norm(g.astype(np.float64)) for g in grads.values()]
  )
  for name, grad in grads.items():
    out[f'{prefix}.grad.{name}'] = grad
  return {k: v for k, v in out.items() if k in stored}


def forward_stages(ref: parity.Reference) -> Dict[str, np.ndarray]:
  """Merged frame-0 superpixels and, per frame, superfeatures, ROIs, attention maps,
  pre-segmentation, logits and confident flags."""
  stages = _iteration_stages(run_iteration(ref), ref.vectors, 'train')
  return {
    k: v for k, v in stages.items() if k == 'train.spx_merged0' or k.startswith('train.frame')
  }


def loss_stages(ref: parity.Reference) -> Dict[str, np.ndarray]:
  """NT-Xent (sum / T) and cross-entropy (sum / (T - 1)) of the iteration."""
  stages = _iteration_stages(run_iteration(ref), ref.vectors, 'train')
  return {k: v for k, v in stages.items() if k.startswith('train.loss_')}


def gradient_stages(ref: parity.Reference) -> Dict[str, np.ndarray]:
  """Per-parameter gradient L2 norms in PyTorch parameter order, and every gradient that the
  directory stores (PyTorch layout)."""
  stages = _iteration_stages(run_iteration(ref), ref.vectors, 'train')
  return {k: v for k, v in stages.items() if k.startswith('train.grad')}


# Our float64 iteration per Reference (by identity), from the subprocess.
_RUNS64: Dict[int, Tuple[parity.Reference, Dict[str, np.ndarray]]] = {}


def float64_stages(ref: parity.Reference) -> Dict[str, np.ndarray]:
  """Our iteration in float64 under the directory's `train64.*` keys (none when it has none).

  Runs `python -m shls_jax.parity.training` in a subprocess with JAX_ENABLE_X64=1.
  """
  if not any(k.startswith('train64.') for k in ref.vectors):
    return {}
  if id(ref) not in _RUNS64:
    with tempfile.TemporaryDirectory() as tmp:
      out = Path(tmp) / 'train64.npz'
      env = dict(os.environ, JAX_ENABLE_X64='1')
      done = subprocess.run(
        [sys.executable, '-m', 'shls_jax.parity.training', str(ref.directory), str(out)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
      )
      if done.returncode != 0:
        raise RuntimeError(f'the float64 iteration failed:\n{done.stderr[-4000:]}')
      with np.load(out) as f:
        _RUNS64[id(ref)] = (ref, {k: f[k] for k in f.files})
  return _RUNS64[id(ref)][1]


def running_statistics_stages(ref: parity.Reference) -> Dict[str, np.ndarray]:
  """Running mean and variance of every BatchNorm after the iteration."""
  out = {}
  for path, value in flatten_dict(run_iteration(ref).batch_stats).items():
    if path[-1] in ('mean', 'var'):
      out[f'train.bn_running_{path[-1]}.{".".join(path[:-1])}'] = np.asarray(value)
  return out


STAGE_GROUPS: Tuple[Callable[[parity.Reference], Dict[str, np.ndarray]], ...] = (
  forward_stages,
  loss_stages,
  gradient_stages,
  running_statistics_stages,
  float64_stages,
)


def _write_float64_stages(directory: str, out: str) -> None:
  if not jax.config.jax_enable_x64:
    raise SystemExit('run with JAX_ENABLE_X64=1')
  ref = parity.Reference.load(directory)
  np.savez(out, **_iteration_stages(run_iteration(ref), ref.vectors, 'train64'))


if __name__ == '__main__':
  if len(sys.argv) != 3:
    raise SystemExit('usage: python -m shls_jax.parity.training DIR OUT.npz')
  _write_float64_stages(*sys.argv[1:])
