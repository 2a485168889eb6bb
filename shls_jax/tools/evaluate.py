r"""Evaluates SHLS on DAVIS: segments the val sequences, writes the masks and the official scores.

  shls-evaluate --config configs/davis2017_val.py --davis_root DAVIS --results_dir R \
      [--checkpoint shls.pth | --checkpoint workdir/checkpoints] [--sequences a,b] \
      [--overwrite] [--overlays] [--zip] [--baseline] [--report [--compare R2]] \
      [--config.eval.size='(240, 432)']

  shls-evaluate --config configs/youtube_vos.py --youtube_root YTVOS --results_dir R \
      [--checkpoint ...] [--sequences video1,video2] [--zip]

  shls-evaluate --score_only --davis_root DAVIS --results_dir R [--single_object] \
      [--sequences a,b] [--split val] [--overwrite] [--report [--compare R2]]

`--score_only` scores an existing results folder without running the network, with the DAVIS-2017
protocol (every object of the first frame) unless `--single_object` (DAVIS-2016: all objects
merged); with `--config` the config's `eval` block decides instead. It imports neither JAX nor
TensorFlow. YouTube-VOS configs (`eval.dataset = 'youtube_vos'`) read `--youtube_root` instead of
`--davis_root` and are not scored here (the server scores the zip). Without `--checkpoint` the
network has random weights (smoke tests only). `--report` also writes `<results_dir>/report.html`
(`shls_jax.evaluation.report`): tables, plots and worst frames beside the copy-first-mask
baseline, and beside a second results folder with `--compare`. See `shls_jax.evaluation.evaluator` for the
results folder rule.
"""

import sys
from pathlib import Path

from absl import app, flags
from ml_collections import config_flags

from shls_jax import renamed_settings
from shls_jax.data import davis
from shls_jax.evaluation import defaults as eval_defaults
from shls_jax.evaluation import report, scoring
from shls_jax.tools import cli

FLAGS = flags.FLAGS


def define_flags() -> None:
  config_flags.DEFINE_config_file('config', None, 'Evaluation config file.', lock_config=True)
  flags.DEFINE_string('davis_root', None, 'DAVIS root folder (JPEGImages/, Annotations/).')
  flags.DEFINE_string('youtube_root', None, 'YouTube-VOS root folder (valid/, valid_all_frames/).')
  flags.DEFINE_string('results_dir', None, 'Output folder of masks and CSVs.')
  flags.DEFINE_string('checkpoint', None, 'Reference .pth file or orbax checkpoint folder.')
  flags.DEFINE_list('sequences', None, "Sequences (YouTube-VOS: videos) instead of the config's.")
  flags.DEFINE_bool('score_only', False, 'Only score an existing results folder.')
  flags.DEFINE_bool(
    'single_object', False, 'Score-only without --config: merge all objects (DAVIS-2016).'
  )
  flags.DEFINE_string('split', 'val', 'Score-only without --config: ImageSets/2017/<split>.txt.')
  flags.DEFINE_integer('workers', 2, 'Score-only without --config: scoring threads.')
  flags.DEFINE_bool('overwrite', False, 'Recompute everything and replace existing results.')
  flags.DEFINE_bool('overlays', False, 'Also write JPEG overlays to <results_dir>/overlays/.')
  flags.DEFINE_bool('zip', False, 'Also write <results_dir>/submission-<split>.zip for a server.')
  flags.DEFINE_bool(
    'baseline', False, 'Also score copying the first mask forward, into <results_dir>/baseline.'
  )
  flags.DEFINE_bool(
    'report', False, 'Also write <results_dir>/report.html (tables, plots, worst frames).'
  )
  flags.DEFINE_string('compare', None, 'With --report: a second results folder to plot beside.')
  flags.DEFINE_enum(
    'first_mask',
    None,
    eval_defaults.FIRST_MASKS,
    "Frame 0's mask: the annotation, or auto (its built-in salient object, unsupervised; "
    'DAVIS-2016 protocol). Sets config.eval.first_mask.',
  )
  flags.mark_flags_as_required(['results_dir'])


def score_only() -> None:
  """Scores `--results_dir` with the flags' protocol; the CSVs (and the report) go next to the
  masks."""
  sequences = davis.select_sequences(FLAGS.davis_root, FLAGS.sequences, FLAGS.split)
  if FLAGS.report:
    check_report(FLAGS.overwrite)
  scoring.score_folder(
    FLAGS.davis_root,
    FLAGS.results_dir,
    sequences,
    split=FLAGS.split,
    single_object=FLAGS.single_object,
    workers=FLAGS.workers,
    replace_csvs=FLAGS.overwrite,
  )
  if FLAGS.report:
    write_report(FLAGS.davis_root, sequences, FLAGS.single_object, '480p', FLAGS.workers)


def check_report(overwrite: bool) -> None:
  """Refuses, before any work, a report already there (unless `overwrite`) or a missing
  `--compare` folder."""
  path = Path(FLAGS.results_dir) / report.REPORT_FILE
  if path.exists() and not overwrite:
    raise FileExistsError(f'{path} already exists: pass --overwrite to replace it')
  if FLAGS.compare and not Path(FLAGS.compare).is_dir():
    raise FileNotFoundError(f'--compare folder {FLAGS.compare} does not exist')


def write_report(
  davis_root, sequences, single_object, resolution, workers, baseline_dir=None
) -> None:
  path = report.write_report(
    davis_root,
    FLAGS.results_dir,
    sequences,
    single_object=single_object,
    resolution=resolution,
    compare=FLAGS.compare,
    baseline_dir=baseline_dir,
    workers=workers,
    overwrite=True,
  )
  print(f'report: {path}', flush=True)


def segment(config, youtube: bool) -> None:
  """Segments (and for DAVIS scores) with the network; its modules import JAX, which scoring
  alone does not need."""
  from shls_jax import checkpoints
  from shls_jax.evaluation import evaluator, youtube_evaluator

  checkpoints.quiet_orbax_logging()
  common = dict(
    checkpoint=FLAGS.checkpoint,
    overwrite=FLAGS.overwrite,
    overlays=FLAGS.overlays,
    submission=FLAGS.zip,
  )
  if youtube:
    computed = youtube_evaluator.evaluate(
      config, FLAGS.results_dir, videos=FLAGS.sequences, **common
    )
    print(f'segmented {len(computed)} videos into {FLAGS.results_dir}', flush=True)
    return
  if FLAGS.report:
    # A report is this folder's, like its CSVs: replaced when the evaluation replaces them.
    check_report(overwrite=True)
  evaluator.evaluate(
    config,
    FLAGS.results_dir,
    sequences=FLAGS.sequences,
    score_only=FLAGS.score_only,
    baseline=FLAGS.baseline,
    **common,
  )
  if FLAGS.report and config.eval.score:
    write_report(
      config.eval.davis_root,
      evaluator.selected_sequences(config.eval, FLAGS.sequences),
      config.eval.single_object,
      config.eval.resolution,
      config.eval.workers,
      # The baseline the run scored: the copy of the first masks it started from.
      Path(FLAGS.results_dir) / evaluator.BASELINE_DIR if FLAGS.baseline else None,
    )


def main(argv) -> None:
  cli.check_no_arguments(argv)
  config = FLAGS.config
  if config is not None:
    renamed_settings.check_config(config)
  if config is None and FLAGS.first_mask is not None:
    raise app.UsageError('--first_mask decides how masks are made: it needs --config')
  if config is None and not FLAGS.score_only:
    raise app.UsageError('--config is required unless --score_only')
  if config is not None and 'eval' not in config:
    raise app.UsageError(
      'the config has no `eval` block: use configs/davis2017_val.py or configs/davis2016_val.py'
    )
  youtube = config is not None and config.eval.get('dataset', 'davis') == 'youtube_vos'
  root = 'youtube_root' if youtube else 'davis_root'
  if FLAGS[root].value is None:
    raise app.UsageError(f'--{root} is required')
  if FLAGS.compare and not FLAGS.report:
    raise app.UsageError('--compare adds a results folder to the report: pass --report too')
  if youtube and FLAGS.report:
    raise app.UsageError('YouTube-VOS is scored by its server: no report can be made here')
  if youtube and (FLAGS.score_only or FLAGS.baseline):
    raise app.UsageError('YouTube-VOS is scored by its server: submit the --zip instead')
  if config is None:
    score_only()
    return
  config.eval[root] = FLAGS[root].value
  if FLAGS.first_mask is not None:
    if youtube:
      raise app.UsageError('--first_mask is for DAVIS: YouTube-VOS gives its objects')
    config.eval.first_mask = FLAGS.first_mask
  if config.eval.get('first_mask') == 'auto' and FLAGS.report and not FLAGS.baseline:
    raise app.UsageError(
      '--report with --first_mask auto needs --baseline: its baseline copies the salient mask'
    )
  segment(config, youtube)


def run() -> None:
  cli.run(main, define_flags, __name__)


if __name__ == '__main__':
  sys.exit(run())
