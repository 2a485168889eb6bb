"""Recomputes every stage of a reference parity directory and compares it with the reference.

    python -m shls_jax.parity --vectors DIR [--out OUT.npz] [--stages network,pipeline,training]

DIR holds `checkpoint.pth` and `vectors.npz` (schema in the parity README). One line per stage:
key, max relative error (float) or count of differing elements (integer), PASS/FAIL. Exit
status 1 when any stage fails, 2 when DIR or the arguments are unusable.
"""

import argparse
import sys

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


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument(
    '--vectors', required=True, help='parity directory (vectors.npz, checkpoint.pth)'
  )
  parser.add_argument('--out', help='write the recomputed stages to this .npz')
  parser.add_argument(
    '--stages',
    default='network,pipeline,training',
    help='comma-separated stage families: network, pipeline, training',
  )
  args = parser.parse_args(argv)
  try:
    groups = stage_groups(args.stages.split(','))
    ref = Reference.load(args.vectors)
  except (FileNotFoundError, ValueError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  return 0 if run_groups(ref, groups, args.out) else 1


if __name__ == '__main__':
  sys.exit(main())
