"""Evaluation on DAVIS-2016 val: the 20 sequences, each scored as one object.

  shls-evaluate --config configs/davis2016_val.py --davis_root DAVIS \
      --results_dir results/davis2016-val --checkpoint shls.pth \
      --config.eval.superpixels.method=precomputed \
      --config.eval.superpixels.root=DAVIS/superpixels/isec

Expected (published SHLS, ISEC superpixels at 480p): J&F-Mean 73.5, J-Mean 76.6, F-Mean 70.4.
The sequences are named here, so a DAVIS-2016 or a DAVIS-2017 root both work; on a subset such as
the five-sequence sample pass them with `--sequences blackswan,bmx-trees,car-shadow,dog,libby`.
"""

import ml_collections

from configs import davis2017_val

DAVIS2016_VAL = (
  'blackswan',
  'bmx-trees',
  'breakdance',
  'camel',
  'car-roundabout',
  'car-shadow',
  'cows',
  'dance-twirl',
  'dog',
  'drift-chicane',
  'drift-straight',
  'goat',
  'horsejump-high',
  'kite-surf',
  'libby',
  'motocross-jump',
  'paragliding-launch',
  'parkour',
  'scooter-black',
  'soapbox',
)


def get_config() -> ml_collections.ConfigDict:
  config = davis2017_val.get_config()
  config.eval.sequences = ','.join(DAVIS2016_VAL)
  config.eval.single_object = True
  return config
