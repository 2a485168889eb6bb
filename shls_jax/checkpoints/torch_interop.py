"""Reading and writing reference PyTorch checkpoints of the SHLS network.

A Flax variable path joined by '.' is the PyTorch name of the same tensor; only the leaf names
and layouts differ: conv `kernel` [kh, kw, in, out] <-> `weight` [out, in, kh, kw], dense
`kernel` [in, out] <-> `weight` [out, in], BatchNorm `scale` <-> `weight`, batch_stats `mean`,
`var`, `num_batches_tracked` (int32) <-> `running_mean`, `running_var`,
`num_batches_tracked` (int64). Checkpoints are `{'model': state_dict, 'epoch', 'top_iou',
'global_ite', 'test_ite'}` with 'module.'-prefixed keys, as the reference saves them.

torch is imported only when a file is read or written (extra `shls-jax[torch]`).
"""

import os
from pathlib import Path
from typing import Any, Dict, Mapping, Tuple

import jax
import numpy as np
from flax.traverse_util import flatten_dict, unflatten_dict

PREFIX = 'module.'

_PARAM_LEAVES = {'scale': 'weight', 'bias': 'bias'}
_STAT_LEAVES = {
  'mean': 'running_mean',
  'var': 'running_var',
  'num_batches_tracked': 'num_batches_tracked',
}
_LEAF_ORDER = ('weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked')
# PyTorch registration order of named children wherever it is not alphabetical; one global
# ranking is consistent with every module of the network.
_CHILD_ORDER = (
  'spx_embedding',
  'feat_extractor',
  'mem_select',
  'segmenter',
  'sf_head_L1',
  'sf_head_L4',
  'sf_conv_1x1',
  'convAM',
  'convL2',
  'gate',
  'downsample',
  'conv1',
  'conv2',
  'layer1',
  'layer2',
  'layer3',
  'layer4',
  'convFM',
  'res_L4',
  'RF2',
  'RF1',
  'pred',
  'convFS',
  'ResFS',
  'ResMM',
  'left',
  'shortcut',
)

Variables = Dict[str, Any]


def _import_torch():
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(
      "reading or writing PyTorch checkpoints needs torch: pip install 'shls-jax[torch]'"
    ) from e
  return torch


def _torch_name(collection: str, path: Tuple[str, ...]) -> str:
  *modules, leaf = path
  if collection == 'batch_stats':
    leaf = _STAT_LEAVES[leaf]
  elif leaf == 'kernel':
    leaf = 'weight'
  else:
    leaf = _PARAM_LEAVES[leaf]
  return '.'.join(modules + [leaf])


def _to_torch_layout(leaf: str, value: np.ndarray) -> np.ndarray:
  if leaf != 'kernel':
    return value
  return value.transpose(3, 2, 0, 1) if value.ndim == 4 else value.T


def _to_flax_layout(leaf: str, value: np.ndarray) -> np.ndarray:
  if leaf != 'kernel':
    return value
  return value.transpose(2, 3, 1, 0) if value.ndim == 4 else value.T


def _order_key(name: str):
  *modules, leaf = name.split('.')
  key = [
    (0, int(m), '')
    if m.isdigit()
    else (1, _CHILD_ORDER.index(m) if m in _CHILD_ORDER else len(_CHILD_ORDER), m)
    for m in modules
  ]
  return key + [(2, _LEAF_ORDER.index(leaf), leaf)]


def variables_to_arrays(variables: Variables) -> Dict[str, np.ndarray]:
  """Flax variables {'params', 'batch_stats'} -> {PyTorch name: numpy array in PyTorch layout},
  unprefixed, in PyTorch state_dict order; num_batches_tracked as int64 scalars."""
  out = {}
  for collection in ('params', 'batch_stats'):
    for path, value in flatten_dict(dict(variables[collection])).items():
      value = np.asarray(jax.device_get(value))
      if path[-1] == 'num_batches_tracked':
        value = value.astype(np.int64)
      out[_torch_name(collection, path)] = _to_torch_layout(path[-1], value)
  return {k: out[k] for k in sorted(out, key=_order_key)}


def _expected_names(template: Variables) -> Dict[str, Tuple[str, Tuple[str, ...], tuple]]:
  """PyTorch name -> (collection, Flax path, PyTorch shape) for every variable of template."""
  names = {}
  for collection in ('params', 'batch_stats'):
    for path, value in flatten_dict(dict(template[collection])).items():
      shape = tuple(value.shape)
      if path[-1] == 'kernel':
        shape = shape[::-1][:2] + shape[:2] if len(shape) == 4 else shape[::-1]
      names[_torch_name(collection, path)] = (collection, path, shape)
  return names


def strip_prefix(state_dict: Mapping[str, Any]) -> Dict[str, Any]:
  """Removes the 'module.' prefix of a DistributedDataParallel state_dict when all keys carry it."""
  if state_dict and all(k.startswith(PREFIX) for k in state_dict):
    return {k[len(PREFIX) :]: v for k, v in state_dict.items()}
  return dict(state_dict)


def arrays_to_variables(state_dict: Mapping[str, Any], template: Variables) -> Variables:
  """A PyTorch-layout state_dict (tensors or arrays, 'module.' prefix optional) -> Flax variables
  with the structure of `template` (for instance `jax.eval_shape` of `init_variables`).

  Raises:
    ValueError naming every missing, unexpected and mis-shaped tensor at once.
  """
  arrays = {
    k: np.asarray(v.detach().cpu().numpy() if hasattr(v, 'detach') else v)
    for k, v in strip_prefix(state_dict).items()
  }
  expected = _expected_names(template)
  missing = [k for k in expected if k not in arrays]
  unexpected = [k for k in arrays if k not in expected]
  misshaped = [
    f'{k}: {arrays[k].shape} instead of {expected[k][2]}'
    for k in expected
    if k in arrays and arrays[k].shape != expected[k][2]
  ]
  if missing or unexpected or misshaped:
    parts = [
      f'{title} ({len(items)}): ' + ', '.join(items)
      for title, items in (
        ('missing', missing),
        ('unexpected', unexpected),
        ('wrong shape', misshaped),
      )
      if items
    ]
    raise ValueError('state_dict does not match the SHLS network; ' + '; '.join(parts))
  flat = {}
  for name, (collection, path, _) in expected.items():
    value = _to_flax_layout(path[-1], arrays[name])
    dtype = np.int32 if path[-1] == 'num_batches_tracked' else np.float32
    flat[(collection,) + path] = np.array(value, dtype=dtype, order='C')
  return unflatten_dict(flat)


def _template() -> Variables:
  from shls_jax.model.shls import init_variables

  return jax.eval_shape(init_variables, jax.random.PRNGKey(0))


def _read(path: os.PathLike) -> Any:
  torch = _import_torch()
  if not os.path.isfile(path):
    raise FileNotFoundError(f'checkpoint {path} does not exist')
  try:
    return torch.load(path, map_location='cpu', weights_only=True)
  except Exception as e:  # torch raises many types for damaged files.
    raise ValueError(f'cannot read checkpoint {path}: not a readable PyTorch file ({e})') from e


def load_torch_checkpoint(path: os.PathLike, template: Variables = None) -> Variables:
  """Reads a reference checkpoint ({'model': state_dict, ...} or a bare state_dict, keys with
  or without 'module.') into Flax variables {'params', 'batch_stats'} (numpy arrays)."""
  checkpoint = _read(path)
  state_dict = checkpoint.get('model', checkpoint) if isinstance(checkpoint, dict) else None
  if not isinstance(state_dict, Mapping):
    raise ValueError(f'checkpoint {path} holds no state_dict')
  try:
    return arrays_to_variables(state_dict, template or _template())
  except ValueError as e:
    raise ValueError(f'checkpoint {path}: {e}') from None


def variables_to_state_dict(variables: Variables, prefix: str = PREFIX):
  """Flax variables -> PyTorch state_dict (float32 tensors, int64 num_batches_tracked) with
  `prefix` on every key ('' for none)."""
  torch = _import_torch()
  return {
    prefix + k: torch.from_numpy(np.array(v, order='C'))
    for k, v in variables_to_arrays(variables).items()
  }


def save_torch_checkpoint(
  path: os.PathLike,
  variables: Variables,
  *,
  epoch: int = 0,
  top_iou: float = 0.0,
  global_ite: int = 0,
  test_ite: int = 0,
  prefix: str = PREFIX,
) -> None:
  """Saves `variables` as a reference checkpoint {'model', 'epoch', 'top_iou', 'global_ite',
  'test_ite'}, whole or not at all (written under a temporary name, then renamed)."""
  torch = _import_torch()
  path = Path(path)
  partial = path.with_name(f'.{path.name}.partial')
  torch.save(
    {
      'model': variables_to_state_dict(variables, prefix),
      'epoch': int(epoch),
      'top_iou': float(top_iou),
      'global_ite': int(global_ite),
      'test_ite': int(test_ite),
    },
    partial,
  )
  os.replace(partial, path)
