"""Trains SHLS on pseudo-sequences of still images (see `shls_jax.training.loop`).

  python train.py --config configs/msra10k.py --workdir workdir/msra10k \
      --config.data.root=MSRA10K [--config.eval.davis_root=DAVIS2017] \
      [--export-torch shls.pth [--overwrite-export]]

An existing workdir is resumed from its latest checkpoint. Multi-host: pass --distributed on
every process (coordinator, process count and id are detected from the cluster environment,
or given with --coordinator-address, --num-processes and --process-id).
"""

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from shls_jax import checkpoints
from shls_jax.data import input_pipeline
from shls_jax.training import loop

config_flags.DEFINE_config_file('config', None, 'Training config file.', lock_config=True)
flags.DEFINE_string('workdir', None, 'Folder of checkpoints, logs and validation results.')
flags.DEFINE_string('export-torch', None, 'Write the final variables to this reference .pth.')
flags.DEFINE_bool('overwrite-export', False, 'Replace an existing --export-torch file.')
flags.DEFINE_bool('distributed', False, 'Call jax.distributed.initialize() (multi-host runs).')
flags.DEFINE_string('coordinator-address', None, 'host:port of process 0 (with --distributed).')
flags.DEFINE_integer('num-processes', None, 'Number of processes (with --distributed).')
flags.DEFINE_integer('process-id', None, "This process's id (with --distributed).")
flags.mark_flags_as_required(['config', 'workdir'])
FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  checkpoints.quiet_orbax_logging()
  # The pipeline's TensorFlow must leave accelerator memory to JAX.
  input_pipeline.hide_gpus_from_tensorflow()
  if FLAGS.distributed:
    jax.distributed.initialize(
      coordinator_address=FLAGS['coordinator-address'].value,
      num_processes=FLAGS['num-processes'].value,
      process_id=FLAGS['process-id'].value,
    )
  logging.info(
    'JAX process %d of %d, local devices %s',
    jax.process_index(),
    jax.process_count(),
    jax.local_devices(),
  )
  config = FLAGS.config
  if FLAGS['export-torch'].value:
    config.export_torch = FLAGS['export-torch'].value
  config.export_overwrite = FLAGS['overwrite-export'].value or config.export_overwrite
  try:
    loop.train_and_evaluate(config, FLAGS.workdir)
  except (FileNotFoundError, FileExistsError, ValueError, FloatingPointError) as error:
    raise SystemExit(f'error: {error}') from None


if __name__ == '__main__':
  app.run(main)
