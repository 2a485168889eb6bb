"""Seconds per frame of the whole propagation loop, exact and fast modes, on a real 480p sequence.

    python benchmarks/inference.py [--davis_root=../shared/data/davis2016-sample]
        [--sequence=blackswan] [--frames=4] [--segments=1000] [--checkpoint=ckpt.pth]
        [--max_canvas=384]

Each mode first runs the clip once (warm-up: compilation), then again timed; the table gives
per-frame seconds of each stage (superpixels, embed, memory, decode, aggregation; fast mode's
aggregation runs inside its decode), frames/s, and fast against exact measured in this process,
then the warm-up run's seconds per frame (compilation included: exact mode compiles the decoder
for every new crop shape, which a new video brings on most frames) and the canvases fast mode
decoded on (frames per canvas; one decoder compilation each).
Without --checkpoint the network has fresh random weights (speed does not depend on them).
"""

import time
from pathlib import Path

import jax
import numpy as np
from absl import app, flags

from shls_jax import superpixels
from shls_jax.data import davis
from shls_jax.inference import defaults as inference_defaults
from shls_jax.inference.engine import Propagator
from shls_jax.model.shls import init_variables

FLAGS = flags.FLAGS
flags.DEFINE_string(
  'davis_root',
  str(Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'davis2016-sample'),
  'DAVIS-layout folder with --sequence',
)
flags.DEFINE_string('sequence', 'blackswan', 'DAVIS sequence to propagate')
flags.DEFINE_integer('frames', 4, 'first frames of the sequence')
flags.DEFINE_integer('segments', 1000, 'SLIC superpixels per frame')
flags.DEFINE_string('checkpoint', None, 'reference .pth; default random weights')
flags.DEFINE_integer('max_canvas', None, "fast mode's config.max_canvas; default the config's")

STAGES = ('superpixels', 'embed', 'memory', 'decode', 'aggregation')


def _timed_run(variables, mode, frames, spx, mask, max_canvas):
  """(per-stage seconds per frame of one timed run after a warm-up run, the warm-up run's
  seconds per frame, the engine)."""
  config = inference_defaults.get_config()
  config.mode = mode
  if max_canvas is not None:
    config.max_canvas = max_canvas
  engine = Propagator(variables, config)
  start = time.perf_counter()
  engine.run(frames, spx, mask)
  warm_up = (time.perf_counter() - start) / len(frames)
  engine.timings.clear()
  engine.canvases.clear()
  start = time.perf_counter()
  engine.run(frames, spx, mask)
  total = time.perf_counter() - start
  per_frame = {k: v / len(frames) for k, v in engine.timings.items()}
  per_frame['total'] = total / len(frames)
  return per_frame, warm_up, engine


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  seq = davis.load_sequence(FLAGS.davis_root, FLAGS.sequence)
  frames = davis.load_frames(seq)[: FLAGS.frames]
  mask = davis.load_masks(seq, indices=[0], single_object=True)[0]
  start = time.perf_counter()
  spx = np.stack([superpixels.compute(f, n_segments=FLAGS.segments) for f in frames])
  spx_time = (time.perf_counter() - start) / len(frames)
  if FLAGS.checkpoint:
    from shls_jax.checkpoints.torch_interop import load_torch_checkpoint

    variables = load_torch_checkpoint(FLAGS.checkpoint)
  else:
    variables = init_variables(jax.random.PRNGKey(0))
  print(
    f'{FLAGS.sequence}: {len(frames)} frames {frames.shape[1]}x{frames.shape[2]}, '
    f'{spx.max(axis=(1, 2)).mean():.0f} SLIC superpixels per frame, {jax.devices()[0]}'
  )

  runs = {
    mode: _timed_run(variables, mode, frames, spx, mask, FLAGS.max_canvas)
    for mode in ('exact', 'fast')
  }
  rows = {mode: row for mode, (row, _, _) in runs.items()}
  for row in rows.values():
    row['superpixels'] = spx_time
    row['total'] += spx_time
  print(f'{"s/frame":12s}' + ''.join(f'{s:>13s}' for s in STAGES) + f'{"total":>9s}{"fps":>8s}')
  for mode, row in rows.items():
    print(
      f'{mode:12s}'
      + ''.join(f'{row.get(s, 0.0):13.3f}' for s in STAGES)
      + f'{row["total"]:9.3f}{1 / row["total"]:8.3f}'
    )
  print(
    f'{"fast/exact":12s}'
    + ''.join(
      f'{rows["fast"].get(s, 0.0) / max(rows["exact"].get(s, 0.0), 1e-9):13.2f}' for s in STAGES
    )
    + f'{rows["fast"]["total"] / rows["exact"]["total"]:9.2f}'
  )
  print(
    'warm-up run s/frame (with compilation):',
    ', '.join(f'{mode} {warm_up:.3f}' for mode, (_, warm_up, _) in runs.items()),
  )
  print(
    'fast-mode canvases (frames):',
    ', '.join(f'{h}x{w} ({n})' for (h, w), n in sorted(runs['fast'][2].canvases.items())),
    f'(max_canvas {runs["fast"][2].config.max_canvas})',
  )


if __name__ == '__main__':
  app.run(main)
