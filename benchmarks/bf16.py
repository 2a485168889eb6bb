"""bfloat16 compute against float32 on the shared parity vectors: the losses and gradients of one
static training step. A report of how far bf16 moves them, not a parity claim.

  python benchmarks/bf16.py [--parity=../shared/parity] [--names=v1,v2]

For each parity directory: the reference checkpoint's variables, the recorded first T frames
(frame 0's superpixels merged with its labels, pools of every frame) as one sequence of the
static step (`train_step.compute_gradients`, the step's own triplet sampling with one fixed key),
run with `step.dtype='float32'` and `'bfloat16'`. Prints both losses and, per module group, the
gradients' relative L2 error ||g_bf16 - g_f32|| / ||g_f32|| and their cosine.
"""

import functools
from pathlib import Path

import jax
import numpy as np
from absl import app, flags

from shls_jax.parity import reference as parity
from shls_jax.parity import training as parity_training
from shls_jax.superpixels import pools
from shls_jax.training import defaults as step_defaults
from shls_jax.training import train_step as ts

FLAGS = flags.FLAGS
flags.DEFINE_string('parity', '../shared/parity', 'folder of the parity directories')
flags.DEFINE_list('names', ['v1', 'v2'], 'parity directories to run')

CAPACITY_MULTIPLE = 64


def parity_sequence(ref: parity.Reference) -> tuple[dict, int]:
  """(one-sequence batch of the static step [1, T, ...], classes incl. the background)."""
  v, t = ref.vectors, parity_training.num_frames(ref)
  spx, label = v['spx'][:t].astype(np.int32), v['label'][:t].astype(np.int32)
  spx[0] = pools.merge_with_annotation(spx[0], label[0])
  capacity = -(-int(spx.max()) // CAPACITY_MULTIPLE) * CAPACITY_MULTIPLE
  frame_pools = np.zeros((t, capacity), np.int32)
  valid = np.zeros((t, capacity), bool)
  for f in range(t):
    found = pools.mode_pools(spx[f], label[f])
    frame_pools[f, : found.size], valid[f, : found.size] = found, True
  num_cls = int(v['train.frame1.pred'].shape[1])
  batch = {
    'image': np.moveaxis(v['image'][:t], 1, -1).astype(np.float32),
    'spx': spx,
    'label': label,
    'pools': frame_pools,
    'spx_valid': valid,
    'num_cls': np.int32(num_cls),
  }
  return {k: np.asarray(x)[None] for k, x in batch.items()}, num_cls


def agreement(ref: parity.Reference) -> tuple[dict, dict]:
  """({dtype: metrics}, {group: (relative L2 error, cosine)}) of the bf16 step against float32."""
  batch, num_cls = parity_sequence(ref)
  variables = jax.tree.map(np.asarray, ref.variables)
  results = {}
  for dtype in ('float32', 'bfloat16'):
    config = step_defaults.get_config()
    config.object_capacity, config.dtype = num_cls - 1, dtype
    grad_fn = jax.jit(functools.partial(ts.compute_gradients, config=config))
    results[dtype] = jax.device_get(
      grad_fn(variables['params'], variables['batch_stats'], batch, jax.random.PRNGKey(0))
    )
  groups = {}
  for group in results['float32'][0]:
    a = np.concatenate([np.ravel(x) for x in jax.tree.leaves(results['float32'][0][group])])
    b = np.concatenate([np.ravel(x) for x in jax.tree.leaves(results['bfloat16'][0][group])])
    norm = np.linalg.norm(a)
    if norm == 0:
      continue
    groups[group] = (np.linalg.norm(b - a) / norm, float(a @ b) / norm / np.linalg.norm(b))
  return {d: r[2] for d, r in results.items()}, groups


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  for name in FLAGS.names:
    directory = Path(FLAGS.parity) / name
    if not (directory / 'vectors.npz').exists():
      raise app.UsageError(f'{directory} holds no vectors.npz (a parity directory)')
    metrics, groups = agreement(parity.Reference.load(directory))
    print(
      f'\n{name}: '
      + ', '.join(
        f'{d} loss {float(m["loss"]):.5f} (NT-Xent {float(m["ntxent"]):.5f}, CE {float(m["ce"]):.5f})'
        for d, m in metrics.items()
      )
    )
    print(f'{"group":>16} | relative L2 error | cosine')
    for group, (error, cosine) in groups.items():
      print(f'{group:>16} | {error:17.4f} | {cosine:.5f}')


if __name__ == '__main__':
  app.run(main)
