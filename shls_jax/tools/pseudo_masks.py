r"""Writes unsupervised pseudo-masks of a folder of images: one PNG per image, same stem and size.

  shls-pseudo-masks --images DIR --out DIR [--method saliency_cut] \
      [--param iterations=5,...] [--binary] [--workers N] [--overwrite]

A soft saliency map in 0..255 by default (training binarises pseudo-masks at random thresholds,
so it wants soft maps), a 0/255 mask with `--binary` (`shls_jax.data.saliency.binary_mask`).
Methods and parameters: `shls_jax.data.saliency`; none needs learned weights or a download.
`--method self_trained` learns a small network over the whole folder from its fused cues
(`shls_jax.data.self_training`; a few minutes on a CPU for a few hundred images), resumable from
`<out>/.self_training/`. A run resumes a folder it made with the same settings; nothing else is
overwritten without `--overwrite`. Errors (an unreadable image, a foreign folder) stop it with
one line.
"""

import sys
from pathlib import Path

from absl import app, flags

from shls_jax.data import pseudo_masks, saliency
from shls_jax.tools import cli

FLAGS = flags.FLAGS


def _params(texts) -> dict[str, str]:
  params = {}
  for text in texts or ():
    name, sep, value = text.partition('=')
    if not sep or not name:
      raise app.UsageError(f'--param wants NAME=VALUE, got {text!r}')
    params[name] = value
  return params


def define_flags() -> None:
  flags.DEFINE_string('images', None, 'Folder of images.')
  flags.DEFINE_string('out', None, 'Folder of the PNG masks.')
  flags.DEFINE_enum('method', saliency.DEFAULT_METHOD, saliency.METHODS, 'Pseudo-mask method.')
  flags.DEFINE_multi_string('param', [], 'NAME=VALUE override of a method parameter (repeatable).')
  flags.DEFINE_bool('binary', False, '0/255 masks instead of soft maps.')
  flags.DEFINE_integer('workers', 1, 'Parallel processes.')
  flags.DEFINE_bool('overwrite', False, 'Replace what --out holds.')
  flags.mark_flags_as_required(['images', 'out'])


def main(argv) -> None:
  cli.check_no_arguments(argv)
  images = pseudo_masks.list_images(Path(FLAGS.images))
  count = pseudo_masks.write_masks(
    images,
    Path(FLAGS.out),
    FLAGS.method,
    _params(FLAGS.param),
    binary=FLAGS.binary,
    workers=FLAGS.workers,
    overwrite=FLAGS.overwrite,
  )
  print(f'{count} masks computed, {len(images) - count} kept: {FLAGS.out}')


def run() -> None:
  cli.run(main, define_flags, __name__)


if __name__ == '__main__':
  sys.exit(run())
