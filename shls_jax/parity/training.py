"""Recomputes the reference training iteration (`train.*` of a parity directory) with
`shls_jax.training.reference_step` and compares every stage with the reference.

    python -m shls_jax.parity --vectors DIR --stages training

The iteration runs on the first T frames of DIR, T being the number of recorded
`train.triplets<t>` arrays, with those triplets. Stage groups are plain functions
`group(ref) -> {key: array}` in the layout of `vectors.npz` (NCHW, attention maps [4, h, w]);
they share one run of the iteration per `parity.Reference`. Tolerances are those of
`parity.compare_stage` (gradients relative to a floor, see `parity.gradient_floor`).
"""

import re
from typing import Callable, Dict, Tuple

import numpy as np
from flax.traverse_util import flatten_dict

from shls_jax.checkpoints.torch_interop import variables_to_arrays
from shls_jax.parity import reference as parity
from shls_jax.training import reference_step

# One run of the iteration per Reference (by identity; the Reference is kept alive with it).
_RUNS: Dict[int, Tuple[parity.Reference, reference_step.StepResult]] = {}


def num_frames(ref: parity.Reference) -> int:
  """T: the frames of the recorded iteration (one `train.triplets<t>` per frame)."""
  frames = {int(m.group(1)) for m in map(re.compile(r'train\.triplets(\d+)').fullmatch,
                                         ref.vectors) if m}
  if not frames or frames != set(range(len(frames))):
    raise ValueError(f'train.triplets<t> must be recorded for t = 0..T-1; found {sorted(frames)}')
  return len(frames)


def run_iteration(ref: parity.Reference) -> reference_step.StepResult:
  """The reference step on the directory's first T frames with its recorded triplets."""
  if id(ref) not in _RUNS:
    v, t = ref.vectors, num_frames(ref)
    num_cls = v['train.frame1.pred'].shape[1]
    result = reference_step.reference_step(
        ref.variables, np.moveaxis(v['image'][:t], 1, -1), v['spx'][:t], v['label'][:t],
        num_cls, triplets=[v[f'train.triplets{n}'] for n in range(t)])
    _RUNS[id(ref)] = (ref, result)
  return _RUNS[id(ref)][1]


def forward_stages(ref: parity.Reference) -> Dict[str, np.ndarray]:
  """Merged frame-0 superpixels and, per frame, superfeatures, ROIs, attention maps,
  pre-segmentation, logits and confident flags."""
  result = run_iteration(ref)
  c, record = result.constants, result.record
  out = {'train.spx_merged0': np.asarray(c.spx[0])}
  for t, boxes in enumerate(c.boxes):
    key = f'train.frame{t}'
    out[f'{key}.superfeatures'] = record.superfeatures[t]
    out[f'{key}.bbox'] = np.asarray(boxes, np.int32)
    for k, attmap in enumerate(c.attmaps[t]):
      out[f'{key}.attmap{k}'] = np.moveaxis(np.asarray(attmap), -1, 0)
    if t > 0:
      out[f'{key}.preseg'] = record.presegs[t - 1]
      out[f'{key}.pred'] = parity.to_nchw(record.preds[t - 1][None])
    if 0 < t < len(c.boxes) - 1:
      out[f'{key}.confident'] = record.confident[t - 1].astype(np.int32)
  return out


def loss_stages(ref: parity.Reference) -> Dict[str, np.ndarray]:
  """NT-Xent (sum / T) and cross-entropy (sum / (T - 1)) of the iteration."""
  result = run_iteration(ref)
  return {'train.loss_ntxent': np.asarray(result.ntxent, np.float32),
          'train.loss_ce': np.asarray(result.ce, np.float32)}


def gradient_stages(ref: parity.Reference) -> Dict[str, np.ndarray]:
  """Per-parameter gradient L2 norms in PyTorch parameter order, and every gradient that the
  directory stores (PyTorch layout)."""
  grads = variables_to_arrays({'params': run_iteration(ref).grads, 'batch_stats': {}})
  out = {'train.grad_norm': np.array([np.linalg.norm(g.astype(np.float64))
                                      for g in grads.values()])}
  for key in ref.vectors:
    if key.startswith('train.grad.'):
      out[key] = grads[key[len('train.grad.'):]]
  return out


def running_statistics_stages(ref: parity.Reference) -> Dict[str, np.ndarray]:
  """Running mean and variance of every BatchNorm after the iteration."""
  out = {}
  for path, value in flatten_dict(run_iteration(ref).batch_stats).items():
    if path[-1] in ('mean', 'var'):
      out[f'train.bn_running_{path[-1]}.{".".join(path[:-1])}'] = np.asarray(value)
  return out


STAGE_GROUPS: Tuple[Callable[[parity.Reference], Dict[str, np.ndarray]], ...] = (
    forward_stages, loss_stages, gradient_stages, running_statistics_stages)
