r"""Trains SHLS on pseudo-sequences of still images (see `shls_jax.training.loop`).

  shls-train --config configs/msra10k.py --workdir workdir/msra10k \
      --config.data.root=MSRA10K [--config.eval.davis_root=DAVIS2017] \
      [--export_torch shls.pth [--overwrite_export]]

An existing workdir is resumed from its latest checkpoint. Multi-host: pass --distributed on
every process (coordinator, process count and id are detected from the cluster environment,
or given with --coordinator_address, --num_processes and --process_id).
"""

import sys

import jax
from absl import flags, logging
from ml_collections import config_flags

from shls_jax import checkpoints
from shls_jax.tools import cli

FLAGS = flags.FLAGS


def define_flags() -> None:
  config_flags.DEFINE_config_file('config', None, 'Training config file.', lock_config=True)
  flags.DEFINE_string('workdir', None, 'Folder of checkpoints, logs and validation results.')
  flags.DEFINE_string('export_torch', None, 'Write the final variables to this reference .pth.')
  flags.DEFINE_bool('overwrite_export', False, 'Replace an existing --export_torch file.')
  flags.DEFINE_bool('distributed', False, 'Call jax.distributed.initialize() (multi-host runs).')
  flags.DEFINE_string('coordinator_address', None, 'host:port of process 0 (with --distributed).')
  flags.DEFINE_integer('num_processes', None, 'Number of processes (with --distributed).')
  flags.DEFINE_integer('process_id', None, "This process's id (with --distributed).")
  flags.mark_flags_as_required(['config', 'workdir'])


def main(argv) -> None:
  cli.check_no_arguments(argv)
  # TensorFlow (the input pipeline's) is imported here, not for --help.
  from shls_jax.data import input_pipeline
  from shls_jax.training import loop

  checkpoints.quiet_orbax_logging()
  # The pipeline's TensorFlow must leave accelerator memory to JAX.
  input_pipeline.hide_gpus_from_tensorflow()
  if FLAGS.distributed:
    jax.distributed.initialize(
      coordinator_address=FLAGS.coordinator_address,
      num_processes=FLAGS.num_processes,
      process_id=FLAGS.process_id,
    )
  logging.info(
    'JAX process %d of %d, local devices %s',
    jax.process_index(),
    jax.process_count(),
    jax.local_devices(),
  )
  config = FLAGS.config
  if FLAGS.export_torch:
    config.export_torch = FLAGS.export_torch
  config.export_overwrite = FLAGS.overwrite_export or config.export_overwrite
  try:
    loop.train_and_evaluate(config, FLAGS.workdir)
  except FloatingPointError as error:
    raise SystemExit(f'error: {error}') from None


def run() -> None:
  cli.run(main, define_flags, __name__)


if __name__ == '__main__':
  sys.exit(run())
