"""How every command runs: absl flags (snake_case, `--config.x=y` overrides), one-line errors.

Whatever a user can get wrong (a flag, a path, a file's contents, a full disk, Ctrl-C) ends the
command with one line `error: <message>` on stderr and status 1, never a traceback.

A command module defines its flags in a `define_flags()` function and calls
`cli.run(main, define_flags, __name__)` from its `run()`, the `[project.scripts]` entry point.
Flags are defined only when the command runs, so that importing a command's functions (tests,
other programs) registers nothing in absl's global flag table.
"""

import errno
import logging
import re
import sys
from pathlib import Path
from typing import Callable

from absl import app, flags

from shls_jax import renamed_settings

HELP_FLAGS = ('-h', '-help', '--help', '--helpshort')
# What a user's input can get wrong: reported as one line, never as a traceback.
USER_ERRORS = (
  FileNotFoundError,
  FileExistsError,
  NotADirectoryError,
  IsADirectoryError,
  PermissionError,
  ValueError,
)
# Write failures of the machine rather than of the program.
_DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO)
_CONFIG_FLAG = re.compile(r'--(\w*config)(?:=(.*))?$')


def _help(module_name: str) -> None:
  """Prints the command's docstring and its own flags; absl's help would name the console
  script's wrapper (which defines none) and exit with status 1."""
  module = sys.modules[module_name]
  print((module.__doc__ or '').strip() + '\n')
  print(flags.FLAGS.module_help(module))
  sys.exit(0)


def run(main: Callable, define_flags: Callable[[], None], module_name: str) -> None:
  """Defines the command's flags, parses `sys.argv` and calls `main(argv)`.

  `main` raises `app.UsageError` for wrong flags, the `USER_ERRORS` for wrong input and `OSError`
  for a full disk: each becomes `error: <message>` on stderr and status 1, as do flags that do not
  parse and Ctrl-C.
  """
  define_flags()
  # The faiss loader reports at INFO which of its builds it loaded: noise on a command's stderr.
  logging.getLogger('faiss.loader').setLevel(logging.WARNING)

  def parse(argv):
    if any(arg in HELP_FLAGS for arg in argv[1:]):
      _help(module_name)
    renamed = renamed_settings.renamed_in_flags(argv[1:])
    if renamed:
      sys.exit(f'error: {renamed}')
    missing = _missing_config_file(argv[1:])
    if missing:
      sys.exit(f'error: {missing}')
    try:
      return flags.FLAGS(argv)
    except flags.Error as error:
      sys.exit(f'error: {error} (--help lists the flags)')
    except (AttributeError, KeyError) as error:
      # ml_collections' answer to `--config.<key>=...` for a key the config does not have.
      key = str(error).strip('\'"')
      sys.exit(f"error: the config has no key '{key}': check the --config.<key> overrides")
    except (TypeError, ValueError) as error:
      sys.exit(f'error: a --config.<key> override does not fit its key: {error}')

  def guarded(argv):
    try:
      return main(argv)
    except app.UsageError as error:
      raise SystemExit(f'error: {error} (--help for the usage)') from None
    except USER_ERRORS as error:
      raise SystemExit(f'error: {error}') from None
    except OSError as error:
      if error.errno not in _DISK_ERRORS:
        raise
      where = f': {error.filename}' if error.filename else ''
      raise SystemExit(f'error: {error.strerror or error}{where}') from None
    except KeyboardInterrupt:
      raise SystemExit('error: interrupted') from None

  app.run(guarded, flags_parser=parse)


def _missing_config_file(args) -> str | None:
  """The message for a `--config FILE[:ARG]` (or `--<x>_config`) whose file does not exist;
  ml_collections would only fail on first use, with a message that names no file."""
  for k, arg in enumerate(args):
    match = _CONFIG_FLAG.match(arg)
    if not match:
      continue
    value = match.group(2) if match.group(2) is not None else next(iter(args[k + 1 :]), '')
    path = Path(value.split(':', 1)[0])
    if value and not path.is_file():
      return f'--{match.group(1)} {path}: no such config file'
  return None


def check_no_arguments(argv) -> None:
  """Refuses positional arguments (every input of a command is a named flag)."""
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')


def size_flag(values, name: str) -> tuple[int, int] | None:
  """(H, W) of a list flag `--name=H,W`; None when not given."""
  if not values:
    return None
  try:
    size = tuple(int(v) for v in values)
  except ValueError:
    size = ()
  if len(size) != 2 or min(size) < 1:
    raise app.UsageError(f'--{name} takes two positive integers H,W, got {",".join(values)}')
  return size
