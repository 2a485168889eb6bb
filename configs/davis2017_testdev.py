"""DAVIS-2017 test-dev (or test-challenge): segment the split and write the server's zip.

  shls-evaluate --config configs/davis2017_testdev.py --davis_root DAVIS2017-test-dev \
      --results_dir results/test-dev --checkpoint shls.pth --zip

Only first frames are annotated, so nothing is scored: the masks go to
`<results-dir>/<sequence>/<frame>.png` and `--zip` writes `<results-dir>/submission-test-dev.zip`
with the sequence folders at its root, as the server expects. For test-challenge pass
`--config.eval.split=test-challenge` (`ImageSets/2017/test-challenge.txt`).
"""

import ml_collections

from configs import davis2017_val


def get_config() -> ml_collections.ConfigDict:
  config = davis2017_val.get_config()
  config.eval.split = 'test-dev'
  config.eval.score = False
  return config
