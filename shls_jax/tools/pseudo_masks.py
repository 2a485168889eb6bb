"""Writes unsupervised pseudo-masks of a folder of images: one PNG per image, same stem and size.

  python -m shls_jax.tools.pseudo_masks --images DIR --out DIR [--method saliency_cut] \
      [--param iterations=5 ...] [--binary] [--workers N] [--overwrite]

A soft saliency map in 0..255 by default (training binarises pseudo-masks at random thresholds,
so it wants soft maps), a 0/255 mask with `--binary` (`shls_jax.data.saliency.binary_mask`).
Methods and parameters: `shls_jax.data.saliency`; none needs learned weights or a download.
A run resumes a folder it made with the same settings; nothing else is overwritten without
`--overwrite`. Errors (an unreadable image, a foreign folder) stop it with one line.
"""

import argparse
from pathlib import Path

from shls_jax.data import pseudo_masks, saliency


def _param(text: str) -> tuple[str, str]:
  name, sep, value = text.partition('=')
  if not sep or not name:
    raise argparse.ArgumentTypeError(f'--param wants NAME=VALUE, got {text!r}')
  return name, value


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--images', required=True, type=Path, help='folder of images')
  parser.add_argument('--out', required=True, type=Path, help='folder of the PNG masks')
  parser.add_argument('--method', default=saliency.DEFAULT_METHOD, choices=saliency.METHODS)
  parser.add_argument('--param', type=_param, action='append', default=[], metavar='NAME=VALUE')
  parser.add_argument('--binary', action='store_true', help='0/255 masks instead of soft maps')
  parser.add_argument('--workers', type=int, default=1, help='parallel processes')
  parser.add_argument('--overwrite', action='store_true', help='replace what OUT holds')
  args = parser.parse_args(argv)
  try:
    images = pseudo_masks.list_images(args.images)
    count = pseudo_masks.write_masks(
      images,
      args.out,
      args.method,
      dict(args.param),
      binary=args.binary,
      workers=args.workers,
      overwrite=args.overwrite,
    )
  except (FileNotFoundError, FileExistsError, NotADirectoryError, ValueError) as error:
    raise SystemExit(f'error: {error}') from None
  print(f'{count} masks computed, {len(images) - count} kept: {args.out}')


if __name__ == '__main__':
  main()
