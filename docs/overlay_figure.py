"""Draws the README's overlay picture: chosen frames of a `shls-segment` overlay video side
by side, each labelled with its index.

  python -m shls_jax.tools.synthetic --videos /tmp/clip --num_videos 1 --frames 40 \
      --objects 2 --video_size 240,432
  python -m shls_jax.tools.segment --video /tmp/clip/JPEGImages/480p/synth000 \
      --mask /tmp/clip/Annotations/480p/synth000/00000.png \
      --checkpoint demo_out/workdir/checkpoints --out /tmp/clip-out
  python docs/overlay_figure.py --video=/tmp/clip-out/overlay.mp4 \
      --out=docs/segment_overlay.jpg --frames=0,13,26,39
  python docs/overlay_figure.py --video=/tmp/any_frame/dog/overlay.mp4 \
      --out=docs/bidirectional_overlay.jpg --frames=0,15,30,45,59 --given=30 --scale=0.5
"""

import cv2
import numpy as np
from absl import app, flags

_GAP = 4

FLAGS = flags.FLAGS
flags.DEFINE_string('video', None, 'overlay video written by shls_jax.segment')
flags.DEFINE_string('out', None, 'PNG to write')
flags.DEFINE_list('frames', None, 'frame indices, e.g. 0,13,26,39')
flags.DEFINE_integer('given', 0, 'index of the annotated frame')
flags.DEFINE_float('scale', 1.0, 'scale of the written strip')
flags.mark_flags_as_required(['video', 'out', 'frames'])


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  try:
    indices = [int(i) for i in FLAGS.frames]
  except ValueError:
    raise app.UsageError(f'--frames takes integers, got {",".join(FLAGS.frames)}') from None
  capture = cv2.VideoCapture(FLAGS.video)
  frames, index = {}, 0
  while len(frames) < len(set(indices)):
    ok, frame = capture.read()
    if not ok:
      raise SystemExit(f'error: {FLAGS.video} has {index} frames, fewer than asked for')
    if index in indices:
      label = f'frame {index}' + (' (given)' if index == FLAGS.given else '')
      cv2.putText(frame, label, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2)
      frames[index] = frame
    index += 1
  gap = np.full((next(iter(frames.values())).shape[0], _GAP, 3), 255, np.uint8)
  strip = [part for i in indices for part in (frames[i], gap)][:-1]
  image = np.concatenate(strip, axis=1)
  if FLAGS.scale != 1:
    image = cv2.resize(image, None, fx=FLAGS.scale, fy=FLAGS.scale, interpolation=cv2.INTER_AREA)
  cv2.imwrite(FLAGS.out, image)


if __name__ == '__main__':
  app.run(main)
