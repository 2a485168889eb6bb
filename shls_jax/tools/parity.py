"""Recomputes every stage of a reference parity directory and compares it with the reference.

  shls-parity --vectors DIR [--out OUT.npz] [--stages network,pipeline,training]

DIR holds `checkpoint.pth` and `vectors.npz` (schema in the parity README). One line per stage:
key, max relative error (float) or count of differing elements (integer), PASS/FAIL. Exit
status 1 when any stage fails or when DIR or the flags are unusable (with one line saying why).
"""

import sys

from absl import flags

from shls_jax.tools import cli

FLAGS = flags.FLAGS


def define_flags() -> None:
  flags.DEFINE_string('vectors', None, 'Parity directory (vectors.npz, checkpoint.pth).')
  flags.DEFINE_string('out', None, 'Write the recomputed stages to this .npz.')
  flags.DEFINE_list(
    'stages', ['network', 'pipeline', 'training'], 'Stage families: network, pipeline, training.'
  )
  flags.mark_flag_as_required('vectors')


def main(argv) -> int:
  cli.check_no_arguments(argv)
  # The stage families import JAX and torch: not for --help.
  from shls_jax.parity import stages
  from shls_jax.parity.reference import Reference

  groups = stages.stage_groups(FLAGS.stages)
  ref = Reference.load(FLAGS.vectors)
  return 0 if stages.run_groups(ref, groups, FLAGS.out) else 1


def run() -> None:
  cli.run(main, define_flags, __name__)


if __name__ == '__main__':
  sys.exit(run())
