"""Evaluation on DAVIS-2017 val (30 sequences, multi-object, semi-supervised protocol).

  shls-evaluate --config configs/davis2017_val.py --davis_root DAVIS2017 \
      --results_dir results/davis2017-val --checkpoint shls.pth \
      --config.eval.superpixels.method=precomputed \
      --config.eval.superpixels.root=DAVIS2017/superpixels/isec

Expected (published SHLS, ISEC superpixels at 480p): J&F-Mean 68.5, J-Mean 68.3, F-Mean 68.7.
Without precomputed maps, SLIC with about 1000 segments per frame is used instead.
"""

import ml_collections

from configs import default
from shls_jax.evaluation import defaults as eval_defaults


def get_config() -> ml_collections.ConfigDict:
  config = default.get_config()
  config.eval = eval_defaults.davis_config()
  return config
