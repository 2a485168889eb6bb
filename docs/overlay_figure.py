"""Draws the README's overlay picture: chosen frames of a `shls_jax.segment` overlay video side
by side, each labelled with its index.

  python -m shls_jax.data.synthetic --videos /tmp/clip --num-videos 1 --frames 40 \
      --objects 2 --video-size 240 432
  python -m shls_jax.segment --video /tmp/clip/JPEGImages/480p/synth000 \
      --mask /tmp/clip/Annotations/480p/synth000/00000.png \
      --checkpoint demo_out/workdir/checkpoints --out /tmp/clip-out
  python docs/overlay_figure.py /tmp/clip-out/overlay.mp4 docs/segment_overlay.jpg \
      --frames 0 13 26 39
"""

import argparse

import cv2
import numpy as np

_GAP = 4


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('video', help='overlay video written by shls_jax.segment')
  parser.add_argument('out', help='PNG to write')
  parser.add_argument('--frames', type=int, nargs='+', required=True, help='frame indices')
  args = parser.parse_args(argv)
  capture = cv2.VideoCapture(args.video)
  frames, index = {}, 0
  while len(frames) < len(set(args.frames)):
    ok, frame = capture.read()
    if not ok:
      raise SystemExit(f'error: {args.video} has {index} frames, fewer than asked for')
    if index in args.frames:
      label = f'frame {index}' + (' (given)' if index == 0 else '')
      cv2.putText(frame, label, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2)
      frames[index] = frame
    index += 1
  gap = np.full((next(iter(frames.values())).shape[0], _GAP, 3), 255, np.uint8)
  strip = [part for i in args.frames for part in (frames[i], gap)][:-1]
  cv2.imwrite(args.out, np.concatenate(strip, axis=1))


if __name__ == '__main__':
  main()
