r"""Trains SHLS on pseudo-sequences of still images: `shls-train` (`shls_jax.tools.train`).

  python train.py --config configs/msra10k.py --workdir workdir/msra10k \
      --config.data.root=MSRA10K [--export_torch shls.pth]
"""

from shls_jax.tools import train

if __name__ == '__main__':
  train.run()
