"""Evaluates SHLS on DAVIS: segments the val sequences, writes the masks and the official scores.

  python evaluate.py --config configs/davis2017_val.py --davis-root DAVIS --results-dir R \
      [--checkpoint shls.pth | --checkpoint workdir/checkpoints] [--sequences a,b] \
      [--score-only] [--overwrite] [--overlays] [--config.eval.size='(240, 432)']

`--score-only` scores an existing results folder without running the network. Without
`--checkpoint` the network has random weights (smoke tests only). See
`shls_jax.evaluation.evaluator` for the results folder rule.
"""

from absl import app, flags
from ml_collections import config_flags

from shls_jax import checkpoints
from shls_jax.evaluation import evaluator

config_flags.DEFINE_config_file('config', None, 'Evaluation config file.', lock_config=True)
flags.DEFINE_string('davis-root', None, 'DAVIS root folder (JPEGImages/, Annotations/).')
flags.DEFINE_string('results-dir', None, 'Output folder of masks and CSVs.')
flags.DEFINE_string('checkpoint', None, 'Reference .pth file or orbax checkpoint folder.')
flags.DEFINE_list('sequences', None, "Sequences to evaluate instead of the config's.")
flags.DEFINE_bool('score-only', False, 'Only score an existing results folder.')
flags.DEFINE_bool('overwrite', False, 'Recompute everything and replace existing results.')
flags.DEFINE_bool('overlays', False, 'Also write JPEG overlays to <results-dir>/overlays/.')
flags.mark_flags_as_required(['config', 'davis-root', 'results-dir'])
FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  checkpoints.quiet_orbax_logging()
  config = FLAGS.config
  if 'eval' not in config:
    raise app.UsageError(
      'the config has no `eval` block: use configs/davis2017_val.py or configs/davis2016_val.py'
    )
  config.eval.davis_root = FLAGS['davis-root'].value
  try:
    evaluator.evaluate(
      config,
      FLAGS['results-dir'].value,
      checkpoint=FLAGS.checkpoint,
      sequences=FLAGS.sequences,
      score_only=FLAGS['score-only'].value,
      overwrite=FLAGS.overwrite,
      overlays=FLAGS.overlays,
    )
  except (FileNotFoundError, FileExistsError, NotADirectoryError, ValueError) as error:
    raise SystemExit(f'error: {error}') from None


if __name__ == '__main__':
  app.run(main)
