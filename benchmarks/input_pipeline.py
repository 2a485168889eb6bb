"""Pseudo-sequence generation speed of the training input pipeline.

  python benchmarks/input_pipeline.py [--sequences=24] [--parallel=1,2]

Uses synthetic still images of MSRA10K size (300x400) and the default data settings (T = 3
frames of 256x256, 300 SLIC segments). Prints sequences per second for each number of parallel
generation calls, after one warm-up batch.
"""

import time

import numpy as np
from absl import app, flags

from shls_jax.data import input_pipeline, synthetic

FLAGS = flags.FLAGS
flags.DEFINE_integer('sequences', 24, 'timed sequences per number of parallel calls')
flags.DEFINE_list('parallel', ['1', '2'], 'numbers of parallel generation calls, e.g. 1,2')


def sequences_per_second(source, parallel: int, sequences: int) -> float:
  """Throughput of `create_split` with batches of 1 sequence on 1 device."""
  batches = input_pipeline.create_split(
    source,
    batch_size_per_device=1,
    local_devices=1,
    seed=0,
    process_index=0,
    process_count=1,
    num_parallel_calls=parallel,
    prefetch=1,
  )
  next(batches)
  start = time.perf_counter()
  for _ in range(sequences):
    next(batches)
  elapsed = time.perf_counter() - start
  batches.close()
  return sequences / elapsed


def _ints(name: str, values: list[str]) -> list[int]:
  """The integers of a list flag, or a usage error naming it."""
  try:
    return [int(v) for v in values]
  except ValueError:
    raise app.UsageError(f'--{name} takes integers, got {",".join(values)}') from None


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  parallel_calls = _ints('parallel', FLAGS.parallel)
  rng = np.random.default_rng(0)
  source = []
  for i in range(16):
    image, mask = synthetic.make_still(rng, 300, 400, soft=i % 2 == 0)
    source.append((image, mask.astype(np.float32) / 255.0))
  print('parallel calls | sequences/s')
  for parallel in parallel_calls:
    print(f'{parallel:14d} | {sequences_per_second(source, parallel, FLAGS.sequences):11.2f}')


if __name__ == '__main__':
  app.run(main)
