"""J&F of propagation from a middle frame, both ways, against copying that frame's mask both ways.

  python benchmarks/any_frame.py --davis_root ../shared/data/davis2016-sample \
      --checkpoint workdir/stills_cpu/checkpoints [--out /tmp/any_frame] [--sequences a,b]

Each sequence is annotated at its middle frame K = T // 2 with its DAVIS-2016 mask (objects
merged) and segmented by `shls-segment`'s function (`segment.segment`: frames K..0, then K..T-1)
with the inference settings of `configs/stills_cpu.py` (its working size, SLIC segments and
capacities). Every frame but K is scored (J and F of `evaluation.metrics`, per sequence the mean
of (J + F) / 2 over frames), beside the mask of frame K copied to every frame. `configs/
stills_cpu.py` trains on the frames of blackswan, car-shadow and libby as stills (never their
annotations): the table marks them 'seen' and gives the held-out mean apart.
"""

import sys
import time
from pathlib import Path

import numpy as np
from absl import app, flags

# `configs` is a folder of the repository, not of the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from configs import stills_cpu  # noqa: E402
from shls_jax import checkpoints  # noqa: E402
from shls_jax.data import davis  # noqa: E402
from shls_jax.evaluation import metrics  # noqa: E402
from shls_jax.inference.engine import Propagator  # noqa: E402
from shls_jax.io import frames as frame_io  # noqa: E402
from shls_jax.io import masks as mask_io  # noqa: E402
from shls_jax.tools import cli, segment  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string('davis_root', '../shared/data/davis2016-sample', 'DAVIS-2016 root')
flags.DEFINE_string('checkpoint', None, 'the stills_cpu checkpoint (orbax folder or .pth)')
flags.DEFINE_string('out', '/tmp/any_frame', 'folder of the segmented masks (replaced)')
flags.DEFINE_list('sequences', ['blackswan', 'bmx-trees', 'car-shadow', 'dog', 'libby'], 'names')
flags.mark_flags_as_required(['checkpoint'])


def jf(masks: np.ndarray, gt: np.ndarray, skip: int) -> float:
  """Mean over frames t != skip of (J + F) / 2 of [T, H, W] masks against [T, H, W] bool gt."""
  scores = [metrics.frame_scores(gt[t], masks[t] > 0) for t in range(len(gt)) if t != skip]
  return float(np.mean([(j + f) / 2 for j, f in scores]))


def main(argv) -> None:
  cli.check_no_arguments(argv)
  config = stills_cpu.get_config(FLAGS.davis_root)
  engine = Propagator(checkpoints.load_variables(FLAGS.checkpoint), config.inference)
  size = tuple(config.eval.size)
  segments = config.eval.superpixels.slic_segments
  rows = []
  for name in FLAGS.sequences:
    sequence = davis.load_sequence(FLAGS.davis_root, name)
    gt = davis.load_masks(sequence, single_object=True) == 1
    middle = len(sequence.frames) // 2
    source = frame_io.VideoSource(sequence.frames[0].parent)
    out = Path(FLAGS.out) / name
    start = time.perf_counter()
    segment.segment(
      source, {middle: gt[middle].astype(np.uint8)}, engine, out, size, segments, progress=False
    )
    seconds = time.perf_counter() - start
    masks = np.stack([mask_io.read_indexed_png(p) for p in sorted((out / 'masks').glob('*.png'))])
    copied = np.repeat(gt[middle][None], len(gt), axis=0)
    seen = 'seen' if name in stills_cpu.TRAIN_SEQUENCES else 'held out'
    rows.append(
      (name, seen, len(gt), middle, jf(masks, gt, middle), jf(copied, gt, middle), seconds)
    )
    print(f'{name}: {rows[-1][4]:.3f} (copy {rows[-1][5]:.3f}), {seconds:.0f} s', flush=True)
  print('\n| sequence | frames | annotated frame | both ways | copy both ways | s |')
  print('|---|---|---|---|---|---|')
  for name, seen, frames, middle, model, copied, seconds in rows:
    print(f'| {name} ({seen}) | {frames} | {middle} | {model:.3f} | {copied:.3f} | {seconds:.0f} |')
  for label, group in (
    ('mean, all', rows),
    ('mean, held out', [r for r in rows if r[1] == 'held out']),
  ):
    if group:
      model, copied = np.mean([r[4] for r in group]), np.mean([r[5] for r in group])
      print(f'| {label} | | | {model:.3f} | {copied:.3f} | |')


if __name__ == '__main__':
  app.run(main)
