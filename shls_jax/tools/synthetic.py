r"""Writes the generated demo data: still images with masks, and DAVIS-layout videos.

  shls-synthetic --stills DIR [--num_stills 300 --still_size 160,200] \
      --videos DIR [--num_videos 4 --frames 20 --objects 2 --video_size 120,216] [--seed 0]

See `shls_jax.data.synthetic` for what is drawn.
"""

import sys
from pathlib import Path

from absl import app, flags

from shls_jax.data import synthetic
from shls_jax.tools import cli

FLAGS = flags.FLAGS


def define_flags() -> None:
  flags.DEFINE_string('stills', None, 'Output folder of the still images.')
  flags.DEFINE_string('videos', None, 'Output folder of the videos (DAVIS layout).')
  flags.DEFINE_integer('seed', 0, 'Random seed.')
  flags.DEFINE_integer('num_stills', 300, 'Still images.')
  flags.DEFINE_list('still_size', ['160', '200'], 'H,W of the stills.')
  flags.DEFINE_integer('num_videos', 4, 'Videos.')
  flags.DEFINE_integer('frames', 20, 'Frames per video.')
  flags.DEFINE_integer('objects', 2, 'Objects per video.')
  flags.DEFINE_list('video_size', ['120', '216'], 'H,W of the videos.')


def main(argv) -> None:
  cli.check_no_arguments(argv)
  if FLAGS.stills is None and FLAGS.videos is None:
    raise app.UsageError('give --stills and/or --videos')
  if FLAGS.stills is not None:
    size = cli.size_flag(FLAGS.still_size, 'still_size')
    names = synthetic.write_stills(Path(FLAGS.stills), FLAGS.num_stills, size, FLAGS.seed)
    print(f'{len(names)} still images in {FLAGS.stills}')
  if FLAGS.videos is not None:
    size = cli.size_flag(FLAGS.video_size, 'video_size')
    names = synthetic.write_videos(
      Path(FLAGS.videos), FLAGS.num_videos, FLAGS.frames, FLAGS.objects, size, FLAGS.seed + 1
    )
    print(f'{len(names)} videos in {FLAGS.videos}')


def run() -> None:
  cli.run(main, define_flags, __name__)


if __name__ == '__main__':
  sys.exit(run())
