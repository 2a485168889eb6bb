"""Per-frame time and host memory over a long generated video, streamed (`Propagator.stream`).

  python benchmarks/long_video.py [--frames=3000] [--size=64,96] [--memory=faiss] \
      [--every=100] [--plot=long_video.png]

The video is generated frame by frame (a square drifting over a textured background, block
superpixels) and never held whole. Fast mode, random weights (speed does not depend on them).
Prints, per block of `--every` frames, the mean seconds per frame, the process' resident memory
(RSS) and the memory's stored superfeatures, then the first and last blocks side by side; writes
both curves to `--plot`.
"""

import resource
import time

import jax
import numpy as np
from absl import app, flags

from shls_jax.inference import defaults
from shls_jax.inference.engine import Propagator
from shls_jax.model import shls
from shls_jax.tools import cli

FLAGS = flags.FLAGS
flags.DEFINE_integer('frames', 3000, 'length of the generated video')
flags.DEFINE_list('size', ['64', '96'], 'frame height and width, H,W')
flags.DEFINE_enum('memory', 'faiss', ['faiss', 'device'], "the engine's memory")
flags.DEFINE_integer('every', 100, 'frames per block of the table and the plot')
flags.DEFINE_string('plot', 'long_video.png', 'PNG of both curves')


def _rss_mb() -> float:
  """Current resident set size in MB (Linux /proc), else the peak."""
  try:
    with open('/proc/self/statm') as f:
      return int(f.read().split()[1]) * resource.getpagesize() / 2**20
  except OSError:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def generated_video(frames: int, size: tuple[int, int], seed: int = 0):
  """Yields (frame [H, W, 3] uint8, superpixels [H, W] int32) of a drifting square."""
  height, width = size
  rng = np.random.default_rng(seed)
  background = rng.integers(60, 140, size=(height, width, 3), dtype=np.uint8)
  block = 8
  spx = (np.arange(height)[:, None] // block) * (-(-width // block)) + np.arange(width) // block
  spx = (spx + 1).astype(np.int32)
  side = height // 3
  for t in range(frames):
    frame = background.copy()
    x = int((width - side) * (0.5 + 0.4 * np.sin(t / 50)))
    frame[side : 2 * side, x : x + side] = (220, 50, 40)
    yield frame, spx


def plot(path: str, rows: list, title: str) -> None:
  import matplotlib

  matplotlib.use('Agg')
  from matplotlib import pyplot as plt

  fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 5), sharex=True)
  frames = [r['step'] for r in rows]
  top.plot(frames, [r['s/frame'] for r in rows], '.-')
  top.set_ylabel(f'seconds per frame\n(block of {frames[0]})')
  top.set_ylim(bottom=0)
  bottom.plot(frames, [r['RSS MB'] for r in rows], '.-')
  bottom.set_ylabel('resident memory, MB')
  bottom.set_ylim(bottom=0)
  bottom.set_xlabel('frame')
  top.set_title(title)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  size = cli.size_flag(FLAGS.size, 'size')
  num_frames, memory, every = FLAGS.frames, FLAGS.memory, FLAGS.every
  config = defaults.get_config()
  config.mode, config.memory, config.superpixel_capacity = 'fast', memory, 256
  engine = Propagator(shls.init_variables(jax.random.PRNGKey(0)), config)
  first = np.zeros(size, np.uint8)
  side = size[0] // 3
  x = int((size[1] - side) * 0.5)
  first[side : 2 * side, x : x + side] = 1

  print(f'{num_frames} frames {size[0]}x{size[1]}, fast mode, {memory} memory')
  print(f'{"frames":>11} {"s/frame":>8} {"RSS MB":>7}')
  rows, start, block_start = [], time.perf_counter(), time.perf_counter()
  stream = engine.stream(generated_video(num_frames, size), first)
  for t, _ in enumerate(stream, start=1):
    if t % every == 0:
      now = time.perf_counter()
      rows.append({'step': t, 's/frame': (now - block_start) / every, 'RSS MB': _rss_mb()})
      block_start = now
      print(f'{t - every + 1:>5}-{t:<5} {rows[-1]["s/frame"]:>8.4f} {_rss_mb():>7.0f}')
  total = time.perf_counter() - start
  # The first block holds compilation; the second is the first steady one.
  steady, last = rows[1], rows[-1]
  print(
    f'{num_frames / total:.2f} frames/s overall; frames {steady["step"]}: '
    f'{steady["s/frame"]:.4f} s, {steady["RSS MB"]:.0f} MB; frames {last["step"]}: '
    f'{last["s/frame"]:.4f} s, {last["RSS MB"]:.0f} MB '
    f'(time x{last["s/frame"] / steady["s/frame"]:.2f}, memory +{last["RSS MB"] - steady["RSS MB"]:.0f} MB)'
  )
  plot(FLAGS.plot, rows, f'{size[0]}x{size[1]}, fast mode, {memory} memory')
  print(f'plot: {FLAGS.plot}')


if __name__ == '__main__':
  app.run(main)
