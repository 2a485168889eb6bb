"""Network stages of a parity directory: eval-mode embedding and superfeatures, feature
modulator and decoder from their recorded inputs, train-mode embedding statistics, losses.

Each stage group is a plain function `group(ref) -> {key: array}` returning arrays under the
key names of `vectors.npz`, in its layout (NCHW).
"""

import functools
import re
from typing import Callable, Dict, List, Tuple

import jax
import jax.numpy as jnp
import numpy as np
from flax.traverse_util import flatten_dict

from shls_jax.model import shls
from shls_jax.model.shls import SHLS
from shls_jax.model.superfeatures import check_labels
from shls_jax.parity.reference import Reference, to_nchw, to_nhwc
from shls_jax.training import losses


def _superfeatures(ref: Reference, image: np.ndarray, spx: np.ndarray):
  """Embedding of one frame: image [3, H, W] (NCHW), spx [H, W]."""
  check_labels(spx, ref.capacity())
  out = ref.embed(to_nhwc(image[None]), jnp.asarray(spx[None]))
  return out, np.asarray(out['superfeatures'][0, : int(spx.max())])


def embedding_stages(ref: Reference) -> Dict[str, np.ndarray]:
  """Frame 0 on the merged superpixels: L1/L4 features, spx_l4, superfeatures."""
  v = ref.vectors
  out, sf = _superfeatures(ref, v['image'][0], v['pools.spx_merged0'])
  return {
    'embed.feat_l1': to_nchw(out['feat_l1']),
    'embed.feat_l4': to_nchw(out['feat_l4']),
    'embed.spx_l4': np.asarray(out['spx_l4'][0]),
    'embed.superfeatures': sf,
  }


def _frame_indices(vectors, pattern: str) -> List[Tuple[int, ...]]:
  found = [re.fullmatch(pattern, k) for k in vectors]
  return sorted(tuple(int(g) for g in m.groups()) for m in found if m)


def frame_superfeature_stages(ref: Reference) -> Dict[str, np.ndarray]:
  """Superfeatures of every recorded frame N >= 1 on its raw superpixels."""
  v = ref.vectors
  return {
    f'frame{n}.superfeatures': _superfeatures(ref, v['image'][n], v['spx'][n])[1]
    for (n,) in _frame_indices(v, r'frame(\d+)\.superfeatures')
  }


def decoder_stages(ref: Reference) -> Dict[str, np.ndarray]:
  """Feature modulator and decoder of every recorded object, from their recorded inputs."""
  v, model = ref.vectors, SHLS()
  out = {}
  for stage, method, extra in (
    ('mem_select', SHLS.modulate, {}),
    ('segmenter', SHLS.refine, {'train': False}),
  ):
    for n, k in _frame_indices(v, rf'frame(\d+)\.{stage}(\d+)\.out'):
      key = f'frame{n}.{stage}{k}'
      inputs = [to_nhwc(v[f'{key}.in{i}']) for i in range(3)]
      out[f'{key}.out'] = to_nchw(model.apply(ref.variables, *inputs, method=method, **extra))
  return out


def train_embedding_stages(ref: Reference) -> Dict[str, np.ndarray]:
  """Train-mode embedding of the training iteration's frames, one call per frame in order
  (frame 0 on `train.spx_merged0`): their superfeatures, and the running statistics of the
  backbone and superfeature-head BatchNorms after the last frame."""
  v = ref.vectors
  frames = [n for (n,) in _frame_indices(v, r'train\.frame(\d+)\.superfeatures')]
  if not frames:
    return {}
  apply = jax.jit(functools.partial(shls.embed, num_segments=ref.capacity(), train=True))
  params, stats = ref.variables['params'], ref.variables['batch_stats']
  out = {}
  for n in frames:
    spx = v['train.spx_merged0'] if n == 0 else v['spx'][n]
    check_labels(spx, ref.capacity())
    emb, stats = apply(
      {'params': params, 'batch_stats': stats}, to_nhwc(v['image'][n][None]), jnp.asarray(spx[None])
    )
    out[f'train.frame{n}.superfeatures'] = np.asarray(emb['superfeatures'][0, : int(spx.max())])
  for path, value in flatten_dict(stats).items():
    name = '.'.join(path[:-1])
    if path[-1] in ('mean', 'var') and path[0] != 'segmenter':
      out[f'train.bn_running_{path[-1]}.{name}'] = np.asarray(value)
  return out


def loss_stages(ref: Reference) -> Dict[str, np.ndarray]:
  """NT-Xent on frame 0's recorded superfeatures/pools/triplets, CE of frame 1's logits."""
  v = ref.vectors
  ntxent = losses.ntxent_loss(
    jnp.asarray(v['embed.superfeatures']),
    jnp.asarray(v['pools.pools0']),
    jnp.asarray(v['loss.triplets'].astype(np.int32)),
  )
  ce = losses.cross_entropy(to_nhwc(v['frame1.pred']), jnp.asarray(v['label'][1:2]))
  return {'loss.ntxent': np.asarray(ntxent), 'loss.ce_frame1': np.asarray(ce)}


STAGE_GROUPS: Tuple[Callable[[Reference], Dict[str, np.ndarray]], ...] = (
  embedding_stages,
  frame_superfeature_stages,
  decoder_stages,
  train_embedding_stages,
  loss_stages,
)
