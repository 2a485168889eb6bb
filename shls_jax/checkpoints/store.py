"""SHLS variables on disk: orbax checkpoint directories and reference-format PyTorch files.

A checkpoint directory is an orbax `CheckpointManager` directory whose items are trees with at
least the keys 'params' and 'batch_stats' (train.py adds the optimiser state and the step). A
file ending in `.pth`/`.pt` is a reference PyTorch checkpoint, read through `shls_jax.checkpoints.torch_interop`.
"""

import logging
import os
from pathlib import Path
from typing import Any, Dict, Optional

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging as absl_logging

Variables = Dict[str, Any]

TORCH_SUFFIXES = ('.pth', '.pt')


def _not_orbax_info(record: logging.LogRecord) -> bool:
  return record.levelno >= logging.WARNING or f'{os.sep}orbax{os.sep}' not in record.pathname


def quiet_orbax_logging() -> None:
  """Keeps orbax's INFO lines (about twenty per save) off the console of a command-line run;
  its warnings and errors still show."""
  handler = absl_logging.get_absl_handler()
  if _not_orbax_info not in handler.filters:
    handler.addFilter(_not_orbax_info)


def is_torch_checkpoint(path: os.PathLike) -> bool:
  return Path(path).suffix in TORCH_SUFFIXES


def save_variables(
  directory: os.PathLike, variables: Variables, step: int = 0, overwrite: bool = False
) -> Path:
  """Saves {'params', 'batch_stats'} as step `step` of an orbax checkpoint directory.

  Raises:
    FileExistsError: the directory already holds that step and `overwrite` is False.
  """
  directory = Path(directory).absolute()
  with ocp.CheckpointManager(directory) as manager:
    if step in manager.all_steps():
      if not overwrite:
        raise FileExistsError(
          f'{directory} already holds step {step}; pass overwrite to replace it'
        )
      manager.delete(step)
    tree = {'params': variables['params'], 'batch_stats': variables['batch_stats']}
    manager.save(step, args=ocp.args.StandardSave(jax.tree_util.tree_map(np.asarray, tree)))
    manager.wait_until_finished()
  return directory


def latest_step(directory: os.PathLike) -> int:
  """The newest step of an orbax checkpoint directory.

  Raises:
    FileNotFoundError: the directory holds no checkpoint.
  """
  with ocp.CheckpointManager(Path(directory).absolute()) as manager:
    step = manager.latest_step()
  if step is None:
    raise FileNotFoundError(f'{directory} holds no orbax checkpoint')
  return step


def load_variables(
  path: os.PathLike, step: Optional[int] = None, average: bool = True
) -> Variables:
  """Reads {'params', 'batch_stats'} from a `.pth` file or an orbax checkpoint directory.

  Args:
    path: a reference PyTorch checkpoint file, or an orbax checkpoint directory.
    step: the step to restore from a directory; the latest one when None.
    average: for a train.py checkpoint that keeps moving averages of the variables (an 'ema'
      entry), return those (what validation scored); False returns the last iterate.

  Raises:
    FileNotFoundError: nothing at `path`, or a directory without checkpoints or without `step`.
    ValueError: a checkpoint without network variables, or an unreadable `.pth` file.
  """
  path = Path(path)
  if not path.exists():
    raise FileNotFoundError(f'no checkpoint at {path}')
  if path.is_file():
    if not is_torch_checkpoint(path):
      raise ValueError(
        f'{path}: expected a PyTorch checkpoint ({"/".join(TORCH_SUFFIXES)}) or '
        'an orbax checkpoint directory'
      )
    from shls_jax.checkpoints.torch_interop import load_torch_checkpoint

    return load_torch_checkpoint(path)
  step = latest_step(path) if step is None else step
  with ocp.CheckpointManager(path.absolute()) as manager:
    if step not in manager.all_steps():
      raise FileNotFoundError(
        f'{path} has no step {step}; it has steps {sorted(manager.all_steps())}'
      )
    tree = manager.restore(step, args=ocp.args.StandardRestore())
  if average and isinstance(tree.get('ema'), dict):
    tree = tree['ema']
  missing = [key for key in ('params', 'batch_stats') if key not in tree]
  if missing:
    raise ValueError(f'checkpoint {path} step {step} has no {" or ".join(missing)}')
  return {'params': tree['params'], 'batch_stats': tree['batch_stats']}
