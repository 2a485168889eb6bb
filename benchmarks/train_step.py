"""Throughput of the pmapped training step (`shls_jax.training.train_step`) on synthetic sequences.

Frames of 256x256 (T = 3), 300 block superpixels padded to a capacity of 512, three objects;
per-device batch sizes 1 and 2 on the local devices. Prints steps/s and sequences/s after
warm-up (compilation and the first steps are not timed).

  .venv/bin/python benchmarks/train_step.py [--steps 3] [--batch_sizes 1,2]
"""

import argparse
import functools
import time

import jax
import numpy as np

from shls_jax.training import defaults as step_defaults
from shls_jax.training import train_step as ts

SIZE = 256
FRAMES = 3
CAPACITY = 512
GRID = (15, 20)  # 300 block superpixels


def synthetic_batch(per_device: int, seed: int = 0) -> dict:
  """Pipeline-shaped batch [D, B, T, ...] with block superpixels and three rectangle objects."""
  rng = np.random.default_rng(seed)
  devices = jax.local_device_count()
  shape = (devices, per_device, FRAMES)
  rows = np.arange(SIZE) * GRID[0] // SIZE
  cols = np.arange(SIZE) * GRID[1] // SIZE
  spx = (rows[:, None] * GRID[1] + cols[None, :] + 1).astype(np.int32)
  num_spx = GRID[0] * GRID[1]
  label = np.ones(shape + (SIZE, SIZE), np.int32)
  pools = np.zeros(shape + (CAPACITY,), np.int32)
  for index in np.ndindex(shape):
    for cls in (2, 3, 4):
      y, x = rng.integers(0, SIZE - 80, 2)
      label[index][y : y + 80, x : x + 64] = cls
    pools[index][:num_spx] = [
      np.bincount(label[index][spx == s]).argmax() for s in range(1, num_spx + 1)
    ]
  return dict(
    image=rng.normal(size=shape + (SIZE, SIZE, 3)).astype(np.float32),
    spx=np.broadcast_to(spx, shape + (SIZE, SIZE)).copy(),
    label=label,
    pools=pools,
    spx_valid=np.broadcast_to(np.arange(CAPACITY) < num_spx, shape + (CAPACITY,)).copy(),
    num_cls=np.full(shape[:2], 4, np.int32),
  )


def measure(per_device: int, steps: int, config) -> tuple[float, float, float]:
  """(compile + first step seconds, steps/s, sequences/s) for one per-device batch size."""
  batch = synthetic_batch(per_device)
  state = ts.replicate(ts.create_train_state(jax.random.PRNGKey(0), config))
  step = jax.pmap(
    functools.partial(ts.train_step, config=config), axis_name='batch', donate_argnums=(0,)
  )
  start = time.perf_counter()
  state, metrics = step(state, batch)
  jax.block_until_ready(metrics)
  warmup = time.perf_counter() - start
  start = time.perf_counter()
  for _ in range(steps):
    state, metrics = step(state, batch)
  jax.block_until_ready(metrics)
  rate = steps / (time.perf_counter() - start)
  return warmup, rate, rate * per_device * jax.local_device_count()


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--steps', type=int, default=3)
  parser.add_argument('--batch_sizes', default='1,2')
  args = parser.parse_args()
  config = step_defaults.get_config()
  print(
    f'{jax.local_device_count()} x {jax.devices()[0].device_kind}, {SIZE}x{SIZE}, '
    f'T={FRAMES}, capacity {CAPACITY}, crop {tuple(config.crop_size)}'
  )
  print(f'{"batch/device":>12} {"warm-up s":>10} {"steps/s":>9} {"sequences/s":>12}')
  for per_device in (int(b) for b in args.batch_sizes.split(',')):
    warmup, steps, sequences = measure(per_device, args.steps, config)
    print(f'{per_device:>12} {warmup:>10.1f} {steps:>9.4f} {sequences:>12.4f}')


if __name__ == '__main__':
  main()
