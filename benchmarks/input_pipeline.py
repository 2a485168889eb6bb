"""Throughput of the training input pipeline per host core, and where a sequence's time goes.

  python benchmarks/input_pipeline.py [--sequences=24] [--cores=1,2] [--json=OUT]

Synthetic stills of MSRA10K size (300x400 JPEG and PNG files), the default data settings (T = 3
frames of 256x256, 300 SLIC segments), one sequence per batch on one device.

1. Per-stage profile of one sequence in this thread (no tf.data): reading and decoding the
   still and the pasted objects' images, rescaling, region labels, the later frames' colour
   jitter, warps and crops, the pastes (cutting, warping and placing objects), SLIC, the
   frame-0 merge, the pools, padding, and the rest of the recipe; each stage's own time (a
   stage called inside another is not counted twice).
2. Sequences/s of the whole tf.data pipeline with the process confined to 1 and 2 cores
   (`os.sched_setaffinity`, in a fresh process each), with host superpixels and with
   superpixels left to the step (`data.superpixels_in_step`), and per core.

JSON keys: `stages` (seconds per sequence), `seq_per_s` and `seq_per_s_per_core_host_spx` /
`seq_per_s_per_core_step_spx` (per core count), `serialisation_s_per_seq` (the pipeline's time
per sequence on 1 core beyond the stages').
"""

import functools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_integer('sequences', 24, 'timed sequences per measurement')
flags.DEFINE_list('cores', ['1', '2'], 'core counts of the throughput rows')
flags.DEFINE_string('json', None, 'write the figures here as JSON')
flags.DEFINE_integer('worker_cores', 0, 'internal: measure the pipeline on this many cores')
flags.DEFINE_bool('worker_in_step', False, 'internal: with superpixels left to the step')
flags.DEFINE_string('worker_stills', '', 'internal: the stills folder')

STILL_SIZE = (300, 400)
STILLS = 16


def _source(stills_root: str):
  from shls_jax.data import stills

  return stills.StillImageSet(stills.list_msra10k(stills_root))


def sequences_per_second(source, sequences: int, parallel: int, in_step: bool) -> float:
  """Throughput of `create_split` (batches of 1 sequence on 1 device) after its first batch."""
  from shls_jax.data import defaults, input_pipeline

  config = defaults.get_config()
  config.superpixels_in_step = in_step
  batches = input_pipeline.create_split(
    source,
    batch_size_per_device=1,
    local_devices=1,
    seed=0,
    config=config,
    process_index=0,
    process_count=1,
    num_parallel_calls=parallel,
  )
  next(batches)
  start = time.perf_counter()
  for _ in range(sequences):
    next(batches)
  elapsed = time.perf_counter() - start
  batches.close()
  return sequences / elapsed


class StageTimer:
  """Seconds spent in named functions, exclusive: time inside a timed call made by another
  timed call counts towards the inner one's stage only."""

  def __init__(self):
    self.seconds = {}
    self._inner = []  # seconds of timed calls made by each running timed call

  def wrap(self, stage: str, fn):
    @functools.wraps(fn)
    def timed(*args, **kwargs):
      self._inner.append(0.0)
      start = time.perf_counter()
      try:
        return fn(*args, **kwargs)
      finally:
        elapsed = time.perf_counter() - start
        inner = self._inner.pop()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + elapsed - inner
        if self._inner:
          self._inner[-1] += elapsed

    return timed


def stage_profile(source, sequences: int) -> dict:
  """Seconds per sequence of each stage of `input_pipeline.generate` (see the module docstring),
  in this thread."""
  from shls_jax import superpixels
  from shls_jax.data import defaults, input_pipeline, pseudo_sequences, stills
  from shls_jax.superpixels import pools

  timer = StageTimer()

  class TimedSource:
    def __len__(self):
      return len(source)

    def __getitem__(self, index):
      return timer.wrap('read + decode', source.__getitem__)(index)

  patches = [
    (pseudo_sequences, 'rescale_still', 'rescale'),
    (stills, 'region_labels', 'region labels'),
    (pseudo_sequences, 'augment_frame', 'later frames (jitter, warp, crop)'),
    (pseudo_sequences, '_paste_objects', 'pastes'),
    (superpixels, 'compute', 'SLIC'),
    (pools, 'merge_with_annotation', 'frame-0 merge'),
    (pools, 'mode_pools', 'pools'),
    (input_pipeline, 'pad_sample', 'padding'),
  ]
  originals = [(module, name, getattr(module, name)) for module, name, _ in patches]
  for module, name, stage in patches:
    setattr(module, name, timer.wrap(stage, getattr(module, name)))
  config = defaults.get_config()
  indices = np.arange(len(source))
  timed = TimedSource()
  try:
    input_pipeline.generate(timed, indices, 0, (0, 0, 0), config)
    timer.seconds.clear()
    start = time.perf_counter()
    for k in range(sequences):
      input_pipeline.generate(timed, indices, k % len(source), (1, k, 0), config)
    total = time.perf_counter() - start
  finally:
    for module, name, fn in originals:
      setattr(module, name, fn)
  stages = {k: v / sequences for k, v in timer.seconds.items()}
  stages['rest of the recipe'] = total / sequences - sum(stages.values())
  stages['total'] = total / sequences
  return stages


def _worker() -> None:
  """One throughput figure on `--worker_cores` cores, printed as JSON."""
  os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[: FLAGS.worker_cores])
  rate = sequences_per_second(
    _source(FLAGS.worker_stills), FLAGS.sequences, FLAGS.worker_cores, FLAGS.worker_in_step
  )
  print('RATE', json.dumps(rate))


def _measure(stills_root: str, cores: int, in_step: bool) -> float:
  """`sequences_per_second` on `cores` cores, in a fresh process confined to them."""
  out = subprocess.run(
    [
      sys.executable,
      __file__,
      f'--worker_cores={cores}',
      f'--worker_in_step={in_step}',
      f'--worker_stills={stills_root}',
      f'--sequences={FLAGS.sequences}',
    ],
    capture_output=True,
    text=True,
    check=False,
  )
  lines = [s for s in out.stdout.splitlines() if s.startswith('RATE ')]
  if out.returncode or not lines:
    raise RuntimeError(f'pipeline worker on {cores} cores failed:\n{out.stderr[-3000:]}')
  return json.loads(lines[-1].split(' ', 1)[1])


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  if FLAGS.worker_cores:
    _worker()
    return
  try:
    cores = [int(c) for c in FLAGS.cores]
  except ValueError:
    raise app.UsageError(f'--cores takes integers, got {",".join(FLAGS.cores)}') from None
  if max(cores) > len(os.sched_getaffinity(0)):
    raise app.UsageError(f'--cores {max(cores)} exceeds the {len(os.sched_getaffinity(0))} here')
  from shls_jax.data import synthetic

  with tempfile.TemporaryDirectory() as root:
    synthetic.write_stills(root, num_images=STILLS, size=STILL_SIZE, seed=0)
    stages = stage_profile(_source(root), FLAGS.sequences)
    print('stage (one sequence, one thread) | ms/sequence | share')
    for stage, seconds in stages.items():
      print(f'{stage:>33} | {1e3 * seconds:11.1f} | {seconds / stages["total"]:5.1%}')
    rates = {(c, in_step): _measure(root, c, in_step) for in_step in (False, True) for c in cores}
  print('\ncores | superpixels | sequences/s | per core')
  for (c, in_step), rate in rates.items():
    print(f'{c:5d} | {"in the step" if in_step else "host":>11} | {rate:11.2f} | {rate / c:8.2f}')
  figures = {
    'stages': stages,
    'seq_per_s': {f'{c}_cores_{"step" if s else "host"}_spx': r for (c, s), r in rates.items()},
    'seq_per_s_per_core_host_spx': {str(c): rates[c, False] / c for c in cores},
    'seq_per_s_per_core_step_spx': {str(c): rates[c, True] / c for c in cores},
  }
  if 1 in cores:
    figures['serialisation_s_per_seq'] = 1.0 / rates[1, False] - stages['total']
  if FLAGS.json:
    Path(FLAGS.json).write_text(json.dumps(figures, indent=1))


if __name__ == '__main__':
  app.run(main)
