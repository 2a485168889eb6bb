"""DAVIS semi-supervised evaluation: propagate first-frame masks, write results, score them.

`Evaluator(config, results_dir).run(variables)` segments every selected sequence with the
propagation engine, writes the masks in the official results layout
(`<results_dir>/<sequence>/<frame>.png`, indexed PNGs with the DAVIS palette, object ids
0 = background, at the annotation resolution), scores the folder with the official protocol,
writes `global_results-<split>.csv` and `per-sequence_results-<split>.csv`, and yields
`(name, value)` pairs such as `('J&F-Mean', 0.68)`. The training loop uses the same object for
validation; `evaluate.py` wraps it for the command line.

Results folder rule: a run writes only into a folder that is missing or empty, or that a previous
run with the same settings (config and weights) made, recognised by its `evaluation.json`. In such
a folder, sequences whose masks are all present are kept (a run resumes). Anything else (another
run's folder, a folder of other files, existing CSVs of a folder scored with `score`) is replaced
only with `overwrite`, which also recomputes every selected sequence.

Under `jax.distributed`, process p segments sequences p, p + P, ... of the list; process 0 scores
once all are written, and every process yields its numbers.
"""

import functools
import itertools
import json
from pathlib import Path
from typing import Any, Iterator

import jax
import ml_collections
import numpy as np
from absl import logging
from jax.experimental import multihost_utils
from tqdm import tqdm

from shls_jax import checkpoints, superpixels
from shls_jax.data import davis, saliency
from shls_jax.evaluation import defaults, scoring
from shls_jax.inference import engine
from shls_jax.io import frames as frame_io
from shls_jax.io import masks as mask_io
from shls_jax.io import overlap
from shls_jax.io import results as results_io
from shls_jax.model import shls

SETTINGS_FILE = 'evaluation.json'
BASELINE_DIR = 'baseline'
SALIENCY_DIR = 'saliency'
OVERLAY_DIR = 'overlays'


def streamed_frames(
  video: str,
  paths,
  names,
  size,
  spx_config: ml_collections.ConfigDict,
  mode: str,
  workers: int = 2,
) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
  """(frame [H, W, 3] uint8 at `size`, superpixels or None) of a video's frames, in order, for
  `Propagator.stream`: frames are read and resized by a thread ahead of the engine, and host
  superpixels (`spx_config.method`) computed ahead by `workers` threads; with 'slic-jax' they
  are None (the engine computes them on the device)."""
  frames = overlap.prefetch(frame_io.read_frame(path, size) for path in paths)
  accelerator = on_accelerator()
  if superpixels.resolve(spx_config.method, mode, accelerator) == 'slic-jax':
    return ((frame, None) for frame in frames)
  return overlap.ordered_map(
    lambda pair: (
      pair[0],
      superpixels.frame_superpixels(pair[0], video, pair[1], spx_config, mode, accelerator),
    ),
    zip(frames, names),
    workers=workers,
  )


def on_accelerator() -> bool:
  """Whether JAX computes on an accelerator (which 'auto' superpixels depend on)."""
  return jax.default_backend() != 'cpu'


def propagator_for(variables, config: ml_collections.ConfigDict) -> engine.Propagator:
  """The propagation engine of `config.inference`, with the JAX SLIC's segment count when
  `config.eval.superpixels` names it."""
  spx_config = config.eval.superpixels
  method = superpixels.resolve(spx_config.method, config.inference.mode, on_accelerator())
  slic_segments = spx_config.slic_segments if method == 'slic-jax' else 0
  return engine.Propagator(variables, config.inference, slic_segments=slic_segments)


def selected_sequences(
  eval_config: ml_collections.ConfigDict, sequences: list[str] | None = None
) -> list[str]:
  """Names to evaluate: `sequences`, else `eval_config.sequences` (comma-separated), else the split.

  Raises:
    FileNotFoundError: a named sequence has no frames under `eval_config.davis_root`.
  """
  if not sequences and eval_config.sequences:
    sequences = [s.strip() for s in eval_config.sequences.split(',') if s.strip()]
  return davis.select_sequences(
    eval_config.davis_root, sequences, eval_config.split, eval_config.resolution
  )


def working_size(eval_config: ml_collections.ConfigDict) -> tuple[int, int] | None:
  """(H, W) frames are segmented at, or None for the annotation resolution."""
  size = tuple(eval_config.size or ())
  if not size:
    return None
  if len(size) != 2 or min(size) < 1:
    raise ValueError(f'eval.size must be () or (H, W) with positive sizes, got {size}')
  return int(size[0]), int(size[1])


def previous_settings(results_dir: Path) -> dict | None:
  """The settings recorded in the results folder, None when it has none."""
  path = results_dir / SETTINGS_FILE
  return json.loads(path.read_text()) if path.is_file() else None


def check_results_dir(results_dir: Path, settings: dict, overwrite: bool) -> None:
  """Applies the results folder rule of the module docstring before anything is written."""
  if overwrite or not results_dir.exists():
    return
  if not results_dir.is_dir():
    raise NotADirectoryError(f'results folder {results_dir} is a file')
  previous = previous_settings(results_dir)
  if previous is None and any(results_dir.iterdir()):
    raise FileExistsError(
      f'results folder {results_dir} is not empty and was not made by '
      'this evaluation: choose another folder or pass --overwrite'
    )
  if previous is not None and previous != settings:
    raise FileExistsError(
      f'results folder {results_dir} holds results of another run '
      f'(other config or weights, see {SETTINGS_FILE}): choose another '
      'folder or pass --overwrite'
    )


def record_settings(results_dir: Path, settings: dict) -> None:
  """Creates the results folder (process 0) with its `evaluation.json`."""
  if jax.process_index() == 0:
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / SETTINGS_FILE).write_text(json.dumps(settings, indent=2) + '\n')


def run_settings(config: ml_collections.ConfigDict, weights: str) -> dict[str, Any]:
  """What decides the masks of a run: the config (but not the scoring workers) and the weights."""
  settings = json.loads(config.to_json())
  for machine_specific in ('workers', 'davis_root', 'youtube_root'):
    settings.get('eval', {}).pop(machine_specific, None)
  return {'weights': weights, 'config': settings}


class Evaluator:
  """Segments and scores DAVIS sequences; `run(variables)` yields `(name, value)` pairs.

  Attributes:
    config: the whole config; reads `eval` (dataset, sizes, superpixels) and `inference` (the
      settings of `engine.Propagator`).
    results_dir: output folder of masks, CSVs, `evaluation.json` and optional overlays.
    sequences: the selected sequence names.
    davis_sequences: their `davis.Sequence`s (frames and annotations found on disk).
  """

  def __init__(
    self,
    config: ml_collections.ConfigDict,
    results_dir,
    *,
    weights: str = '',
    sequences: list[str] | None = None,
    overwrite: bool = False,
    overlays: bool = False,
    progress: bool = True,
  ):
    """Builds the evaluator.

    Args:
      config: whole config (see the class docstring).
      results_dir: output folder.
      weights: what the variables are (a checkpoint path, 'random'), recorded in the settings so
        that a folder made with other weights is never mixed with this run.
      sequences: names to evaluate instead of the config's selection.
      overwrite: recompute every sequence and replace whatever the folder holds.
      overlays: also write JPEG overlays to `<results_dir>/overlays/<sequence>/<frame>.jpg`.
      progress: show progress bars.
    """
    self.config = config
    self.eval_config = config.eval
    self.results_dir = Path(results_dir)
    self.sequences = selected_sequences(self.eval_config, sequences)
    self.size = working_size(self.eval_config)
    self.first_mask = self.eval_config.get('first_mask', 'annotation')
    if self.first_mask not in defaults.FIRST_MASKS:
      raise ValueError(
        f'eval.first_mask is {self.first_mask!r}: expected one of {defaults.FIRST_MASKS}'
      )
    if self.first_mask == 'auto' and not self.eval_config.single_object:
      raise ValueError(
        'eval.first_mask=auto finds one object: it runs the DAVIS-2016 protocol, '
        'with eval.single_object=True (configs/davis2016_val.py)'
      )
    self.overwrite = overwrite
    self.overlays = overlays
    self.progress = progress
    self.settings = run_settings(config, weights)
    self.davis_sequences = [
      davis.load_sequence(self.eval_config.davis_root, s, self.eval_config.resolution)
      for s in self.sequences
    ]

  # ------------------------------------------------------------------------------ results folder

  def check_results_dir(self) -> None:
    """Applies the results folder rule of the module docstring before anything is written."""
    check_results_dir(self.results_dir, self.settings, self.overwrite)

  # ---------------------------------------------------------------------------------- prediction

  def predict_sequence(self, propagator: engine.Propagator, sequence: davis.Sequence) -> np.ndarray:
    """[T, H, W] uint8 result ids of one sequence at the annotation size (H, W); the frames are
    streamed (read, resized and cut into superpixels one at a time)."""
    inputs = streamed_frames(
      sequence.name,
      sequence.frames,
      sequence.frame_names,
      self.size,
      self.eval_config.superpixels,
      self.config.inference.mode,
    )
    full = self.given_mask(sequence)
    results = propagator.stream(inputs, mask_io.resize_ids(full, self.size), progress=self.progress)
    # The given mask is the result of frame 0, at full detail rather than resized twice.
    masks = [full] + [
      mask_io.resize_ids(r.mask, full.shape) for r in itertools.islice(results, 1, None)
    ]
    return np.stack(masks).astype(np.uint8)

  def given_mask(self, sequence: davis.Sequence) -> np.ndarray:
    """[H, W] uint8 ids of frame 0 at the annotation size: its annotation, or its salient object
    with `eval.first_mask='auto'`."""
    if self.first_mask == 'auto':
      return saliency.salient_object(frame_io.read_frame(sequence.frames[0]))
    return davis.first_mask(sequence, self.eval_config.single_object)

  def copy_first_mask(self, sequence: davis.Sequence) -> np.ndarray:
    """[T, H, W] uint8: the first mask on every frame (the baseline a propagation must beat)."""
    return np.repeat(self.given_mask(sequence)[None], len(sequence.frames), axis=0)

  def saliency_per_frame(self, sequence: davis.Sequence) -> np.ndarray:
    """[T, H, W] uint8: every frame's own salient object (the baseline of `first_mask='auto'`,
    which sees no annotation either)."""
    return np.stack([saliency.salient_object(frame_io.read_frame(p)) for p in sequence.frames])

  def predict(self, variables) -> list[str]:
    """Writes the masks of this process's share of the sequences; returns the names computed."""
    propagator = propagator_for(variables, self.config)
    return self._write(lambda sequence: self.predict_sequence(propagator, sequence))

  def _write(self, segment) -> list[str]:
    """Writes `segment(sequence)` ([T, H, W] ids) for this process's share of the sequences
    that are not complete yet; returns the names computed."""
    self.check_results_dir()
    sync('shls_eval_checked')
    record_settings(self.results_dir, self.settings)
    mine = self.davis_sequences[jax.process_index() :: jax.process_count()]
    todo = [
      s
      for s in mine
      if self.overwrite or not results_io.is_complete(self.results_dir / s.name, s.frame_names)
    ]
    # A sequence's masks are written while the next one is segmented.
    with overlap.Writer(depth=1) as writer:
      for sequence in tqdm(todo, desc='sequences', unit='seq', disable=not self.progress):
        masks = segment(sequence)
        writer.submit(
          results_io.write_masks_atomically,
          self.results_dir,
          sequence.name,
          masks,
          sequence.frame_names,
        )
        if self.overlays:
          writer.submit(
            mask_io.write_overlays,
            self.results_dir / OVERLAY_DIR / sequence.name,
            sequence.frames,
            masks,
          )
    return [s.name for s in todo]

  # ------------------------------------------------------------------------------------- scoring

  def score(self) -> tuple[dict[str, float], list[dict]]:
    """Scores the results folder, writes both CSVs and prints the tables (process 0 only).

    CSVs already there are replaced only when overwriting or when this folder's evaluation made
    them (its `evaluation.json` is present).

    Returns:
      (global table, per-sequence rows) as `scoring.tables` gives them.
    """
    config = self.eval_config
    return scoring.score_folder(
      config.davis_root,
      self.results_dir,
      self.sequences,
      split=config.split,
      single_object=config.single_object,
      workers=config.workers,
      resolution=config.resolution,
      replace_csvs=self.overwrite or previous_settings(self.results_dir) is not None,
    )

  def run(self, variables) -> Iterator[tuple[str, float]]:
    """Segments (skipping complete sequences unless overwriting), scores, yields global numbers.

    Args:
      variables: Flax variables {'params', 'batch_stats'} of the SHLS network.

    Yields:
      `(name, value)` for each of `scoring.GLOBAL_COLUMNS` ('J&F-Mean', 'J-Mean', ...), on every
      process; nothing when `eval.score` is False.
    """
    self.predict(variables)
    if not self.eval_config.score:
      # Test splits annotate only their first frames: nothing to score.
      sync('shls_eval_predicted')
      return
    yield from self._score_everywhere()

  def submission_zip(self) -> Path:
    """Writes `<results_dir>/submission-<split>.zip` of the selected sequences (process 0)."""
    path = self.results_dir / f'submission-{self.eval_config.split}.zip'
    if jax.process_index() == 0:
      results_io.write_submission_zip(self.results_dir, self.sequences, path)
    return path

  def run_baseline(self, segment=None) -> Iterator[tuple[str, float]]:
    """As `run`, for a baseline instead of the network: `segment(sequence)` ([T, H, W] ids),
    by default `copy_first_mask`."""
    self._write(segment or self.copy_first_mask)
    yield from self._score_everywhere()

  def _score_everywhere(self) -> Iterator[tuple[str, float]]:
    sync('shls_eval_predicted')
    values = np.zeros(len(scoring.GLOBAL_COLUMNS), np.float64)
    if jax.process_index() == 0:
      global_table, _ = self.score()
      values = np.array([global_table[c] for c in scoring.GLOBAL_COLUMNS])
    if jax.process_count() > 1:
      values = np.asarray(multihost_utils.broadcast_one_to_all(values))
    yield from zip(scoring.GLOBAL_COLUMNS, map(float, values))


def sync(name: str) -> None:
  """Barrier across processes under `jax.distributed`; nothing to wait for with one process."""
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)


def describe_weights(checkpoint: str | None) -> str:
  """What `evaluate` loads for `checkpoint`, as recorded in `evaluation.json`: the absolute path
  (with '@<step>' for an orbax folder) or 'random'."""
  if not checkpoint:
    return 'random'
  path = Path(checkpoint).resolve()
  return f'{path}@{checkpoints.latest_step(path)}' if path.is_dir() else str(path)


def load_weights(checkpoint: str | None):
  """SHLS variables of `checkpoint` (a reference .pth or an orbax folder); None gives random
  weights, with a loud warning."""
  if checkpoint:
    return checkpoints.load_variables(checkpoint)
  # Smoke tests only: the results of random weights mean nothing.
  logging.warning('=' * 70)
  logging.warning('NO --checkpoint: RANDOM WEIGHTS. These results are meaningless.')
  logging.warning('=' * 70)
  return shls.init_variables(jax.random.PRNGKey(0))


def evaluate(
  config: ml_collections.ConfigDict,
  results_dir,
  *,
  checkpoint: str | None = None,
  sequences: list[str] | None = None,
  score_only: bool = False,
  overwrite: bool = False,
  overlays: bool = False,
  submission: bool = False,
  baseline: bool = False,
) -> dict[str, float]:
  """The `evaluate.py` command: segments and scores, or only scores (`score_only`); with
  `submission`, also zips the masks for an evaluation server (`Evaluator.submission_zip`); with
  `baseline`, first scores the copy-first-mask baseline of the same frames into
  `<results_dir>/baseline` (its tables are printed too) and, with `eval.first_mask='auto'`,
  every frame's own salient object into `<results_dir>/saliency`.

  Returns:
    The global numbers {'J&F-Mean': ..., 'J-Mean': ..., ...}.
  """
  if score_only:
    return Evaluator(config, results_dir, sequences=sequences, overwrite=overwrite).score()[0]
  # Dataset, selection and results folder are checked before the slow loading of the weights.
  evaluator = Evaluator(
    config,
    results_dir,
    weights=describe_weights(checkpoint),
    sequences=sequences,
    overwrite=overwrite,
    overlays=overlays,
  )
  evaluator.check_results_dir()
  if baseline:
    # The model's settings are recorded first: the folder is then this run's, baseline included.
    record_settings(evaluator.results_dir, evaluator.settings)
    baselines = [(BASELINE_DIR, 'copy-first-mask', Evaluator.copy_first_mask)]
    if evaluator.first_mask == 'auto':
      baselines.append((SALIENCY_DIR, 'saliency-per-frame', Evaluator.saliency_per_frame))
    for folder, weights, segment in baselines:
      other = Evaluator(
        config,
        Path(results_dir) / folder,
        weights=weights,
        sequences=sequences,
        overwrite=overwrite,
      )
      other.check_results_dir()
      dict(other.run_baseline(functools.partial(segment, other)))
  numbers = dict(evaluator.run(load_weights(checkpoint)))
  if submission:
    print(f'submission: {evaluator.submission_zip()}', flush=True)
  return numbers
