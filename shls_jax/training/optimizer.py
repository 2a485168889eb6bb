"""What both training step modes share: the frozen module groups, the learning rate and the
optimiser.

Module groups, by the top-level variable names of `shls.SHLS` (the reference's module names):

  backbone   `spx_embedding` (its `feat_extractor`: the ResNet-18 variant)
  heads      `sf_head_L1`, `sf_head_L4`, `sf_conv_1x1` (the superfeature heads)
  modulator  `mem_select` (the feature modulator)
  decoder    `segmenter` (the refinement decoder)

A frozen group gets zero updates (and no Adam state) and its BatchNorms run in eval mode. The
backbone and the heads run in one embedding call with one BatchNorm mode, so they are frozen
together or not at all.
"""

from typing import Any, Dict, FrozenSet, Iterable, Tuple

import jax
import optax

FROZEN_GROUPS: Dict[str, Tuple[str, ...]] = {
  'backbone': ('spx_embedding',),
  'heads': ('sf_head_L1', 'sf_head_L4', 'sf_conv_1x1'),
  'modulator': ('mem_select',),
  'decoder': ('segmenter',),
}
# Group names of earlier versions, and what they covered.
_FORMER_GROUPS = {'embedding': ('backbone', 'heads')}


def check_frozen(frozen: Iterable[str]) -> FrozenSet[str]:
  """The validated set of frozen group names.

  Raises:
    ValueError: an unknown or former group name, or the backbone without the heads (or the
      reverse).
  """
  names = frozenset(frozen)
  former = sorted(names & _FORMER_GROUPS.keys())
  if former:
    raise ValueError(
      f'frozen group {former[0]!r} no longer exists: name '
      f'{" and ".join(map(repr, _FORMER_GROUPS[former[0]]))} instead (groups: '
      f'{", ".join(FROZEN_GROUPS)})'
    )
  unknown = sorted(names - FROZEN_GROUPS.keys())
  if unknown:
    raise ValueError(f'unknown frozen groups {unknown}; choose among {list(FROZEN_GROUPS)}')
  if ('backbone' in names) != ('heads' in names):
    raise ValueError(
      "'backbone' and 'heads' run in one embedding call with one BatchNorm "
      'mode; freeze both or neither'
    )
  return names


def trains_embedding(frozen: Iterable[str]) -> bool:
  """Whether the embedding's BatchNorms (backbone and heads) run in train mode."""
  return 'backbone' not in frozen


def trains_decoder(frozen: Iterable[str]) -> bool:
  """Whether the decoder's BatchNorms run in train mode (the modulator has none)."""
  return 'decoder' not in frozen


def frozen_mask(params, frozen: Iterable[str]) -> Any:
  """Pytree like params of bools: True on the leaves of the frozen groups."""
  modules = {m for group in check_frozen(frozen) for m in FROZEN_GROUPS[group]}
  return {
    name: jax.tree.map(lambda _, frozen_module=name in modules: frozen_module, sub)
    for name, sub in params.items()
  }


def learning_rate(config) -> float:
  """Adam's constant rate: config.learning_rate, x jax.device_count() when
  config.scale_learning_rate (the reference scales by its number of devices)."""
  return config.learning_rate * (jax.device_count() if config.scale_learning_rate else 1)


def create_optimizer(params, config) -> optax.GradientTransformation:
  """Adam at `learning_rate(config)` on the trainable groups, after clipping their gradients to
  the global L2 norm config.grad_clip_norm when positive; zero updates on config.frozen."""
  train_tx = optax.adam(learning_rate(config))
  if config.grad_clip_norm > 0:
    train_tx = optax.chain(optax.clip_by_global_norm(config.grad_clip_norm), train_tx)
  labels = jax.tree.map(lambda f: 'frozen' if f else 'train', frozen_mask(params, config.frozen))
  return optax.multi_transform({'train': train_tx, 'frozen': optax.set_to_zero()}, labels)
