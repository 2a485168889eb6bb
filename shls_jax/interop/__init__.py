"""Conversion between reference PyTorch checkpoints and Flax variables.

`torch_checkpoint`: `load_torch_checkpoint(path) -> variables`, `save_torch_checkpoint(path,
variables)`, `variables_to_state_dict`, `arrays_to_variables` (torch imported lazily).
"""

from shls_jax.interop.torch_checkpoint import (arrays_to_variables, load_torch_checkpoint,
                                               save_torch_checkpoint, variables_to_state_dict)

__all__ = ['arrays_to_variables', 'load_torch_checkpoint', 'save_torch_checkpoint',
           'variables_to_state_dict']
