"""SHLS training loop: `train_and_evaluate(config, workdir)`.

Trains on pseudo-sequences of still images (`input_pipeline`), one `train_step` per step over
every device, pmap-ed or, with `config.step.parallel = 'jit'`, jitted over a mesh (or, with
`config.step_mode = 'reference'`, the exact batch-1 reference iteration of `reference_step` on
one device), and writes under `workdir`:

  checkpoints/  orbax CheckpointManager of the latest `config.keep_checkpoints` train states,
                saved every `checkpoint_every_steps` and at the end;
  best/         a second CheckpointManager keeping the one state with the best validation
                J&F-Mean (orbax `best_fn`, `max_to_keep=1`);
  validation/<step>/  masks and CSVs of each validation (`evaluation.evaluator.Evaluator`);
  validation/baseline/  the same for the copy-first-mask baseline (every frame gets the first
                mask), scored once per run on the same sequences;
  learning_curve.csv, learning_curve.png  validation J&F-Mean of the model and the baseline,
                and the mean training losses, by step (`curves`);
  tensorboard/  scalars: loss terms, grad/param/update norms, learning rate, validation scores
                (`val/J&F-Mean` ... and `val/baseline_J&F-Mean`).

Both checkpoint folders hold the TrainState as a tree with 'params', 'batch_stats',
'opt_state', 'step', 'rng' and, with `config.step.ema_decay` > 0, 'ema' (the moving averages of
'params' and 'batch_stats') at the top level, so `checkpoints.load_variables` and
`evaluate.py --checkpoint <workdir>/checkpoints` read them (the averages when present: they
are what validation scored).

Resuming: a run started on a workdir with checkpoints continues from the latest one (step,
parameters, optimiser state and random key as saved). The input pipeline restarts at every
multiple of `checkpoint_every_steps` with a seed made of (`seed`, that step); a run resumed at
step s reopens the pipeline of its segment and skips the batches before s, so it sees exactly
the batches of an uninterrupted run.

Under `jax.distributed` every process reads its own shard of the images; process 0 alone writes
logs, TensorBoard scalars, the exported PyTorch file and the pseudo-masks of a raw image folder
(`make_source`; `<workdir>/pseudo_masks/`, kept for later runs).

Longer than most modules (about 460 lines): the loop and the pieces only it uses (source,
schedule, checkpoint managers, validation, export) read top to bottom; `train_and_evaluate`
itself is a short sequence of the named steps above it.
"""

import collections
import functools
import json
import os
import time
from pathlib import Path
from typing import Dict, Iterator, Optional

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from clu import metric_writers
from flax import jax_utils
from jax.experimental import multihost_utils
from tqdm import tqdm

from shls_jax import checkpoints, renamed_settings
from shls_jax.checkpoints import torch_interop
from shls_jax.data import input_pipeline, pseudo_masks, step_inputs, stills
from shls_jax.evaluation import evaluator as evaluator_lib
from shls_jax.training import curves, optimizer, reference_step
from shls_jax.training import train_step as train_step_lib

STEP_MODES = ('pmap', 'reference')
PARALLEL = ('pmap', 'jit')
BEST_METRIC = 'J&F-Mean'
CHECKPOINT_DIR = 'checkpoints'
BEST_DIR = 'best'
VALIDATION_DIR = 'validation'
TENSORBOARD_DIR = 'tensorboard'
PSEUDO_MASK_DIR = 'pseudo_masks'


def make_source(data_config: ml_collections.ConfigDict, workdir: Path) -> stills.StillImageSet:
  """Still images of `data_config.root` with their masks.

  `layout` 'msra10k': an MSRA10K folder (optional split and mask folder). 'folder': any folders
  of images (`root`, comma-separated), with masks from `mask_dir` when set (one folder), else
  pseudo-masks of `pseudo_mask_method` computed once into `<workdir>/pseudo_masks/` (process 0;
  `pseudo_masks.cached_samples`).
  """
  if not data_config.root:
    raise ValueError(
      'config.data.root is empty: set it to the image folder (--config.data.root=PATH)'
    )
  layout = data_config.get('layout', 'msra10k')
  if layout == 'msra10k':
    samples = stills.list_msra10k(
      data_config.root, data_config.split or None, data_config.mask_dir or None
    )
  elif layout == 'folder':
    folders = [f.strip() for f in data_config.root.split(',') if f.strip()]
    if data_config.mask_dir:
      if len(folders) != 1:
        raise ValueError('config.data.mask_dir goes with one image folder in config.data.root')
      samples = stills.list_folder(folders[0], data_config.mask_dir)
    else:
      make = functools.partial(
        pseudo_masks.cached_samples,
        folders,
        workdir / PSEUDO_MASK_DIR,
        data_config.pseudo_mask_method,
        data_config.pseudo_mask_params.to_dict(),
        binary=data_config.pseudo_mask_binary,
        workers=data_config.pseudo_mask_workers,
      )
      if jax.process_index() == 0:
        make()
      if jax.process_count() > 1:
        multihost_utils.sync_global_devices('shls_pseudo_masks')
      samples = make(progress=False)
  else:
    raise ValueError(f"config.data.layout must be 'msra10k' or 'folder', got {layout!r}")
  return stills.StillImageSet(samples)


def total_steps(config: ml_collections.ConfigDict, num_images: int) -> int:
  """`num_train_steps` if positive, else num_epochs x epoch_fraction x images / global batch."""
  if config.num_train_steps > 0:
    return config.num_train_steps
  global_batch = config.batch_size_per_device * jax.device_count()
  if config.step_mode == 'reference':
    global_batch = 1
  steps = int(config.num_epochs * config.epoch_fraction * num_images) // global_batch
  if steps < 1:
    raise ValueError(
      f'{config.num_epochs} epochs of {config.epoch_fraction} x {num_images} '
      f'images make no step of {global_batch} sequences'
    )
  return steps


def initial_state(config: ml_collections.ConfigDict) -> train_step_lib.TrainState:
  """Unreplicated TrainState at step 0: random variables from `config.seed`, or those of
  `config.init_checkpoint`."""
  variables = None
  if config.init_checkpoint:
    variables = checkpoints.load_variables(config.init_checkpoint)
  return train_step_lib.create_train_state(jax.random.PRNGKey(config.seed), config.step, variables)


def segment_seed(seed: int, step: int) -> int:
  """Pipeline seed of the data segment starting at `step`."""
  return int(np.random.SeedSequence((seed, step)).generate_state(1)[0])


def open_batches(
  source, config: ml_collections.ConfigDict, step: int, local_devices: int
) -> Iterator[Dict[str, np.ndarray]]:
  """Batches from `step` on: the pipeline of step's segment, past its first batches.

  Returns:
    `input_pipeline.Batches` whose next batch is the one of `step`.
  """
  every = config.checkpoint_every_steps
  start = step - step % every if every > 0 else 0
  batches = input_pipeline.create_split(
    source,
    batch_size_per_device=config.batch_size_per_device,
    local_devices=local_devices,
    seed=segment_seed(config.seed, start),
    config=config.data,
    num_parallel_calls=config.data.num_parallel_calls,
  )
  for _ in range(step - start):
    next(batches)
  return batches


@functools.lru_cache(maxsize=4)
def pmapped_train_step(step_config_json: str, inputs: Optional[step_inputs.Settings] = None):
  """`train_step` pmap-ed over 'batch' with the state donated, once per step config (JSON) and
  in-step superpixel settings."""
  step_config = ml_collections.ConfigDict(json.loads(step_config_json))
  return jax.pmap(
    functools.partial(train_step_lib.train_step, config=step_config, inputs=inputs),
    axis_name='batch',
    donate_argnums=(0,),
  )


def _reference_train_step(state, batch, *, config):
  """One reference iteration on the first sequence of `batch` ([1, 1, ...] arrays), on host."""
  sequence = {k: v[0, 0] for k, v in batch.items()}
  rng = np.random.default_rng((config.seed, int(state.step)))
  result = reference_step.reference_step(
    {'params': state.params, 'batch_stats': state.batch_stats},
    sequence['image'],
    sequence['spx'],
    sequence['label'],
    int(sequence['num_cls']),
    rng=rng,
    options=reference_step.StepOptions.from_config(config.step),
  )
  reference_step.release_compiled()
  metrics = dict(loss=result.loss, ntxent=result.ntxent, ce=result.ce)
  return _apply_gradients(state, result.grads, result.batch_stats, metrics)


_apply_gradients = jax.jit(train_step_lib.apply_gradients)


def _local(x):
  """Numpy value of a (replicated) array as this process holds it."""
  return np.asarray(x.addressable_data(0)) if isinstance(x, jax.Array) else np.asarray(x)


def host_state(state, replicated: bool):
  """Numpy copy of the train state (of the first local replica when `replicated`, i.e. with
  pmap's leading device axis)."""
  if replicated:
    # A local shard of a pmap-ed array keeps the device axis, of size 1.
    return jax.tree.map(lambda x: _local(x)[0], state)
  return jax.tree.map(_local, state)


def _checkpoint_managers(workdir: Path, config: ml_collections.ConfigDict):
  latest = ocp.CheckpointManager(
    workdir / CHECKPOINT_DIR,
    options=ocp.CheckpointManagerOptions(max_to_keep=config.keep_checkpoints, create=True),
  )
  best = ocp.CheckpointManager(
    workdir / BEST_DIR,
    options=ocp.CheckpointManagerOptions(
      max_to_keep=1, best_fn=lambda metrics: metrics[BEST_METRIC], best_mode='max', create=True
    ),
  )
  return latest, best


def _check_config(config: ml_collections.ConfigDict) -> None:
  renamed_settings.check_config(config)
  if config.step_mode not in STEP_MODES:
    raise ValueError(f'config.step_mode must be one of {STEP_MODES}, got {config.step_mode!r}')
  if config.step.parallel not in PARALLEL:
    raise ValueError(
      f'config.step.parallel must be one of {PARALLEL}, got {config.step.parallel!r}'
    )
  if config.step_mode == 'reference' and config.data.superpixels_in_step:
    raise ValueError(
      "step_mode 'reference' takes the host's superpixels: set data.superpixels_in_step=False"
    )
  if config.step_mode == 'reference' and (
    config.batch_size_per_device != 1 or jax.process_count() != 1
  ):
    raise ValueError(
      "step_mode 'reference' trains on one sequence per step in one process: "
      'set batch_size_per_device=1 and run without jax.distributed'
    )
  if config.export_torch and Path(config.export_torch).exists() and not config.export_overwrite:
    raise FileExistsError(
      f'{config.export_torch} exists: choose another --export_torch path or pass --overwrite_export'
    )


def _check_finite(metrics: Dict[str, float], step: int, workdir: Path) -> None:
  if not np.isfinite(metrics['loss']):
    raise FloatingPointError(
      f'loss is {metrics["loss"]} at step {step} ({metrics}): training stopped; the '
      f'checkpoints in {workdir / CHECKPOINT_DIR} predate it'
    )


def _evaluator(config: ml_collections.ConfigDict, results_dir: Path, weights: str):
  return evaluator_lib.Evaluator(config, results_dir, weights=weights, progress=False)


def validate(
  config: ml_collections.ConfigDict, workdir: Path, step: int, variables
) -> Optional[Dict[str, float]]:
  """Scores of `variables` on the validation sequences, or None without a DAVIS root."""
  if not config.eval.davis_root:
    logging.info('Validation skipped at step %d: no config.eval.davis_root', step)
    return None
  results = workdir / VALIDATION_DIR / f'{step:08d}'
  return dict(_evaluator(config, results, f'{workdir.resolve()}@{step}').run(variables))


def validate_baseline(config: ml_collections.ConfigDict, workdir: Path) -> Dict[str, float]:
  """Scores of the copy-first-mask baseline on the validation sequences ({} without a root)."""
  if not config.eval.davis_root:
    return {}
  results = workdir / VALIDATION_DIR / evaluator_lib.BASELINE_DIR
  return dict(_evaluator(config, results, 'copy-first-mask').run_baseline())


def export_torch(config: ml_collections.ConfigDict, state, best_manager) -> None:
  """Writes the last (or, with `export_best`, the best validated) variables as a `.pth`: the
  moving averages when the run keeps them (`config.step.ema_decay`)."""
  step = int(state.step)
  variables = train_step_lib.evaluated_variables(state)
  if config.export_best and best_manager.best_step() is not None:
    step = best_manager.best_step()
    variables = checkpoints.load_variables(best_manager.directory, step)
  if jax.process_index() == 0:
    torch_interop.save_torch_checkpoint(config.export_torch, variables, global_ite=step)
    logging.info('Wrote the variables of step %d to %s', step, config.export_torch)


def create_writer(workdir: Path) -> metric_writers.MetricWriter:
  """TensorBoard scalars in `<workdir>/tensorboard` and console lines `[step] name=value, ...`,
  both from process 0 only (the others log nothing)."""
  if jax.process_index() != 0:
    return metric_writers.MultiWriter([])
  return metric_writers.create_default_writer(workdir / TENSORBOARD_DIR, asynchronous=False)


def restore_or_init(config: ml_collections.ConfigDict, manager: ocp.CheckpointManager):
  """The latest checkpoint's train state, else the initial one (`initial_state`)."""
  state = initial_state(config)
  if manager.latest_step() is None:
    return state
  state = manager.restore(
    manager.latest_step(), args=ocp.args.StandardRestore(jax.device_get(state))
  )
  logging.info('Resumed from %s at step %d', manager.directory, int(state.step))
  return state


def step_function(config: ml_collections.ConfigDict, state):
  """(step function, state on the devices, local devices fed per step, batch placement) of
  `config.step_mode` and `config.step.parallel`: the step takes batches as the placement
  returns them from the pipeline's numpy batches."""
  if config.step_mode == 'reference':
    return functools.partial(_reference_train_step, config=config), state, 1, lambda b: b
  inputs = step_inputs.settings(config.data)
  if config.step.parallel == 'jit':
    mesh = train_step_lib.batch_mesh()
    step = train_step_lib.sharded_train_step(config.step, mesh, inputs)
    place = functools.partial(train_step_lib.place_batch, mesh=mesh)
    return step, train_step_lib.place_state(state, mesh), jax.local_device_count(), place
  # Replicated over a mesh axis named as pmap's, so that the first call and later ones (on
  # the step's own outputs) share one compilation.
  state = jax_utils.replicate(state, axis_name='batch')
  step = pmapped_train_step(config.step.to_json(), inputs)
  return step, state, jax.local_device_count(), _place_on_local_devices


# A [local devices, ...] batch split over the local devices as pmap splits its inputs (dispatched
# asynchronously, as `jax.device_put`).
_place_on_local_devices = jax.pmap(lambda batch: batch)


class DevicePrefetch:
  """The batches of a pipeline placed on the devices `size` steps ahead.

  Placement is dispatched asynchronously, so a batch's copy runs while earlier steps compute
  and the step never waits for one. `close` stops the pipeline and drops what was placed ahead.
  """

  def __init__(self, batches: input_pipeline.Batches, place, size: int = 2):
    self._batches, self._place, self._size = batches, place, size
    self._ahead = collections.deque()

  def __iter__(self) -> 'DevicePrefetch':
    return self

  def __next__(self):
    while len(self._ahead) < self._size:
      try:
        self._ahead.append(self._place(next(self._batches)))
      except StopIteration:
        break
    if not self._ahead:
      raise StopIteration
    return self._ahead.popleft()

  def close(self) -> None:
    self._batches.close()
    self._ahead.clear()


class Validation:
  """Validations of a run beside their baseline: TensorBoard, the best checkpoint, the learning
  curve (`<workdir>/learning_curve.csv` and `.png`) and the J&F history of this run."""

  def __init__(self, config, workdir: Path, writer, best_manager: ocp.CheckpointManager):
    self.config, self.workdir, self.writer, self.best_manager = (
      config,
      workdir,
      writer,
      best_manager,
    )
    self.history = {}  # step -> J&F-Mean of this run's validations
    self.baseline = validate_baseline(config, workdir).get(BEST_METRIC)
    self.curve_rows = curves.read_curve(workdir / curves.CURVE_CSV)
    self.losses_since = []  # training scalars logged since the last validation

  def __call__(self, saved) -> None:
    """Validates the host train state `saved` and keeps it if it is the best so far."""
    step = int(saved.step)
    scores = validate(self.config, self.workdir, step, train_step_lib.evaluated_variables(saved))
    if scores is None:
      return
    val = {**scores, f'baseline_{BEST_METRIC}': self.baseline}
    self.writer.write_scalars(step, {f'val/{k}': v for k, v in val.items()})
    self.best_manager.save(
      step, args=ocp.args.StandardSave(saved), metrics={BEST_METRIC: scores[BEST_METRIC]}
    )
    self.history[step] = scores[BEST_METRIC]
    row = {'step': step, **scores, f'baseline {BEST_METRIC}': self.baseline}
    for name in curves.LOSS_COLUMNS:
      values = [m[name] for m in self.losses_since if name in m]
      if values:
        row[name] = float(np.mean(values))
    self.losses_since.clear()
    self.curve_rows.append(row)
    if jax.process_index() == 0:
      curves.write_curve(self.workdir / curves.CURVE_CSV, self.curve_rows)
      curves.plot_curve(self.workdir / curves.CURVE_PNG, self.curve_rows, title=self.workdir.name)

  def report(self) -> None:
    """Last, on stdout: `make demo` ends with the untrained (step 0) and trained scores, the
    baseline of the same sequences and the curve's path."""
    if not self.history or jax.process_index() != 0:
      return
    print(
      f'Validation {BEST_METRIC} by step: '
      + ', '.join(f'{s}: {v:.4f}' for s, v in sorted(self.history.items()))
      + f'\nCopy-first-mask baseline {BEST_METRIC} on the same sequences: {self.baseline:.4f}'
      + f'\nLearning curve: {self.workdir / curves.CURVE_PNG} (data: {curves.CURVE_CSV})',
      flush=True,
    )


def mean_scalars(pending: list, replicated: bool) -> Dict[str, float]:
  """Means over the steps of `pending` (per-step metric dicts of device arrays)."""
  fetched = jax.tree.map(_local, pending)
  if replicated:
    fetched = [{k: v[0] for k, v in m.items()} for m in fetched]
  return {k: float(np.mean([m[k] for m in fetched])) for k in fetched[0]}


def train_and_evaluate(
  config: ml_collections.ConfigDict, workdir: os.PathLike
) -> train_step_lib.TrainState:
  """Trains, checkpoints, validates and optionally exports (see the module docstring).

  Args:
    config: a training config such as `configs/msra10k.py` (data, step, schedule, eval blocks).
    workdir: output folder; an existing one with checkpoints is resumed.

  Returns:
    The final unreplicated train state (numpy leaves).

  Raises:
    FloatingPointError: the loss became NaN or infinite.
  """
  input_pipeline.hide_gpus_from_tensorflow()
  _check_config(config)
  workdir = Path(workdir).absolute()  # orbax needs absolute paths
  workdir.mkdir(parents=True, exist_ok=True)
  source = make_source(config.data, workdir)
  num_steps = total_steps(config, len(source))
  latest_manager, best_manager = _checkpoint_managers(workdir, config)
  state = restore_or_init(config, latest_manager)
  step = int(state.step)
  replicated = config.step_mode == 'pmap' and config.step.parallel == 'pmap'
  step_fn, state, local_devices, place = step_function(config, state)
  writer = create_writer(workdir)
  lr = optimizer.learning_rate(config.step)
  sequences_per_step = config.batch_size_per_device * (
    jax.device_count() if config.step_mode == 'pmap' else 1
  )
  logging.info(
    'Training steps %d..%d, %d sequence(s) per step, lr %g, mode %s',
    step,
    num_steps,
    sequences_per_step,
    lr,
    config.step_mode,
  )
  validation = Validation(config, workdir, writer, best_manager)
  if config.eval_at_start and step == 0:
    validation(host_state(state, replicated))
  every = lambda n: n > 0 and step % n == 0
  batches = None
  pending, tick = [], time.time()
  progress = tqdm(
    total=num_steps, initial=step, desc='train', unit='step', disable=jax.process_index() != 0
  )
  try:
    while step < num_steps:
      if batches is None or every(config.checkpoint_every_steps):
        if batches is not None:
          batches.close()
        batches = DevicePrefetch(open_batches(source, config, step, local_devices), place)
      state, metrics = step_fn(state, next(batches))
      pending.append(metrics)
      step += 1
      progress.update()
      checkpoint_now = step == num_steps or every(config.checkpoint_every_steps)
      eval_now = step == num_steps or every(config.eval_every_steps)
      if pending and (step % config.log_every_steps == 0 or checkpoint_now or eval_now):
        scalars = mean_scalars(pending, replicated)
        _check_finite(scalars, step, workdir)
        elapsed = time.time() - tick
        scalars.update(
          learning_rate=lr,
          steps_per_second=len(pending) / elapsed,
          sequences_per_second=len(pending) * sequences_per_step / elapsed,
        )
        writer.write_scalars(step, {f'train/{k}': v for k, v in scalars.items()})
        validation.losses_since.append(scalars)
        pending, tick = [], time.time()
      if checkpoint_now or eval_now:
        saved = host_state(state, replicated)
      if checkpoint_now:
        latest_manager.save(step, args=ocp.args.StandardSave(saved))
      if eval_now:
        validation(saved)
        tick = time.time()  # validation time is not training time
  finally:
    progress.close()
    if batches is not None:
      batches.close()
    latest_manager.wait_until_finished()
    best_manager.wait_until_finished()
    writer.flush()
    writer.close()

  final = host_state(state, replicated)
  if config.export_torch:
    export_torch(config, final, best_manager)
  latest_manager.close()
  best_manager.close()
  validation.report()
  return final
