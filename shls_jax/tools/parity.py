"""Alias of `python -m shls_jax.parity` (the parity tool's former name)."""

import sys

from shls_jax.parity.__main__ import main

if __name__ == '__main__':
  sys.exit(main())
