"""How every command runs: absl flags (snake_case, `--config.x=y` overrides), one-line errors.

A command module defines its flags in a `define_flags()` function and calls
`cli.run(main, define_flags, __name__)` from its `run()`, the `[project.scripts]` entry point.
Flags are defined only when the command runs, so that importing a command's functions (tests,
other programs) registers nothing in absl's global flag table.
"""

import sys
from typing import Callable

from absl import app, flags

from shls_jax import renamed_settings

HELP_FLAGS = ('-h', '-help', '--help', '--helpshort')
# What a user's input can get wrong: reported as one line, never as a traceback.
USER_ERRORS = (FileNotFoundError, FileExistsError, NotADirectoryError, ValueError)


def _help(module_name: str) -> None:
  """Prints the command's docstring and its own flags; absl's help would name the console
  script's wrapper (which defines none) and exit with status 1."""
  module = sys.modules[module_name]
  print((module.__doc__ or '').strip() + '\n')
  print(flags.FLAGS.module_help(module))
  sys.exit(0)


def run(main: Callable, define_flags: Callable[[], None], module_name: str) -> None:
  """Defines the command's flags, parses `sys.argv` and calls `main(argv)`.

  `main` raises `app.UsageError` for wrong flags (usage and status 1) and the `USER_ERRORS` for
  wrong input, which become `error: <message>` on stderr and status 1.
  """
  define_flags()

  def parse(argv):
    if any(arg in HELP_FLAGS for arg in argv[1:]):
      _help(module_name)
    renamed = renamed_settings.renamed_in_flags(argv[1:])
    if renamed:
      sys.exit(f'error: {renamed}')
    return app.parse_flags_with_usage(argv)

  def guarded(argv):
    try:
      return main(argv)
    except USER_ERRORS as error:
      raise SystemExit(f'error: {error}') from None
    except KeyboardInterrupt:
      raise SystemExit('error: interrupted') from None

  app.run(guarded, flags_parser=parse)


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
