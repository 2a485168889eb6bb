"""Converts SHLS checkpoints between the reference PyTorch format and orbax directories.

  shls-convert --src model.pth --dst ckpt_dir        # .pth -> orbax
  shls-convert --src ckpt_dir --dst model.pth        # orbax -> .pth

The `.pth` written has the reference's layout ('module.'-prefixed keys under 'model'; pass
--no_prefix for bare names) and loads into the PyTorch network with strict key matching.
"""

import sys
from pathlib import Path

from absl import flags

from shls_jax import checkpoints
from shls_jax.tools import cli

FLAGS = flags.FLAGS


def define_flags() -> None:
  flags.DEFINE_string('src', None, '.pth file or orbax checkpoint directory.')
  flags.DEFINE_string('dst', None, '.pth file or orbax checkpoint directory.')
  flags.DEFINE_integer('step', None, 'Step to read from an orbax --src (latest) or write (0).')
  flags.DEFINE_bool('no_prefix', False, "Write keys without 'module.'.")
  flags.DEFINE_bool('overwrite', False, 'Replace an existing --dst.')
  flags.mark_flags_as_required(['src', 'dst'])


def main(argv) -> None:
  cli.check_no_arguments(argv)
  variables = checkpoints.load_variables(FLAGS.src, step=FLAGS.step)
  dst = Path(FLAGS.dst)
  if checkpoints.is_torch_checkpoint(dst):
    if dst.exists() and not FLAGS.overwrite:
      raise FileExistsError(f'{dst} exists; pass --overwrite to replace it')
    from shls_jax.checkpoints.torch_interop import save_torch_checkpoint

    save_torch_checkpoint(dst, variables, prefix='' if FLAGS.no_prefix else 'module.')
  else:
    checkpoints.save_variables(dst, variables, step=FLAGS.step or 0, overwrite=FLAGS.overwrite)
  print(f'wrote {dst}')


def run() -> None:
  cli.run(main, define_flags, __name__)


if __name__ == '__main__':
  sys.exit(run())
