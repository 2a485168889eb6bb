r"""Evaluates SHLS on DAVIS or YouTube-VOS: `shls-evaluate` (`shls_jax.tools.evaluate`).

  python evaluate.py --config configs/davis2017_val.py --davis_root DAVIS --results_dir R \
      [--checkpoint shls.pth]
  python evaluate.py --score_only --davis_root DAVIS --results_dir R [--single_object]
"""

from shls_jax.tools import evaluate

if __name__ == '__main__':
  evaluate.run()
