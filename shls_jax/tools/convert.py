"""Converts SHLS checkpoints between the reference PyTorch format and orbax directories.

  python -m shls_jax.tools.convert --src model.pth --dst ckpt_dir        # .pth -> orbax
  python -m shls_jax.tools.convert --src ckpt_dir --dst model.pth        # orbax -> .pth

The `.pth` written has the reference's layout ('module.'-prefixed keys under 'model'; pass
--no-prefix for bare names) and loads into the PyTorch network with strict key matching.
"""

import argparse
import sys
from pathlib import Path

from shls_jax import checkpoints


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--src', required=True, help='.pth file or orbax checkpoint directory')
  parser.add_argument('--dst', required=True, help='.pth file or orbax checkpoint directory')
  parser.add_argument(
    '--step',
    type=int,
    default=None,
    help='step to read from an orbax --src (latest) or write to one (0)',
  )
  parser.add_argument('--no-prefix', action='store_true', help="write keys without 'module.'")
  parser.add_argument('--overwrite', action='store_true', help='replace an existing --dst')
  args = parser.parse_args(argv)
  try:
    variables = checkpoints.load_variables(args.src, step=args.step)
    dst = Path(args.dst)
    if checkpoints.is_torch_checkpoint(dst):
      if dst.exists() and not args.overwrite:
        raise FileExistsError(f'{dst} exists; pass --overwrite to replace it')
      from shls_jax.checkpoints.torch_interop import save_torch_checkpoint

      save_torch_checkpoint(dst, variables, prefix='' if args.no_prefix else 'module.')
    else:
      checkpoints.save_variables(dst, variables, step=args.step or 0, overwrite=args.overwrite)
  except (FileNotFoundError, FileExistsError, ValueError, ImportError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  print(f'wrote {dst}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
