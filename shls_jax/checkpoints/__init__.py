"""SHLS variables on disk: orbax checkpoint directories (`store`) and reference PyTorch
checkpoints (`torch_interop`)."""

from shls_jax.checkpoints.store import (
  is_torch_checkpoint,
  latest_step,
  load_variables,
  quiet_orbax_logging,
  save_variables,
)

__all__ = [
  'is_torch_checkpoint',
  'latest_step',
  'load_variables',
  'quiet_orbax_logging',
  'save_variables',
]
