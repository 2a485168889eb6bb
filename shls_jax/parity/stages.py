"""Every stage family of a parity directory: recomputed, compared with the reference, printed
one line per stage (`shls-parity`, `shls_jax.tools.parity`)."""

import numpy as np

from shls_jax.parity import network, pipeline, training
from shls_jax.parity.reference import Reference, compare_stage


def run_groups(ref: Reference, groups, out: str = None) -> bool:
  """Prints one line per stage of `groups`; writes the stages to `out` (.npz) if given.

  Every group runs before any comparison: the bound of a float32 gradient reads our float64
  gradients (see `reference.gradient_bound`).

  Returns:
    Whether every stage is reproduced.
  """
  results = {}
  for group in groups:
    for key, value in group(ref).items():
      if key not in ref.vectors:
        raise ValueError(f'{group.__name__} produced {key}, which the directory does not hold')
      results[key] = value
  all_ok = True
  for key in results:
    ok, line = compare_stage(key, results, ref.vectors)
    print(line, flush=True)
    all_ok &= ok
  if out:
    np.savez(out, **results)
  print('all stages reproduced' if all_ok else 'some stages FAILED')
  return all_ok


def stage_groups(names) -> list:
  """Stage groups by family: 'network', 'pipeline', 'training' (the modules of those names)."""
  families = {
    'network': network.STAGE_GROUPS,
    'pipeline': pipeline.STAGE_GROUPS,
    'training': training.STAGE_GROUPS,
  }
  unknown = set(names) - families.keys()
  if unknown:
    raise ValueError(f'unknown stage families {sorted(unknown)}; choose from {sorted(families)}')
  return [group for name in names for group in families[name]]
