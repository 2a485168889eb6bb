"""Evaluation on DAVIS-2017 val (30 sequences, multi-object, semi-supervised protocol).

  python evaluate.py --config configs/davis2017_val.py --davis-root DAVIS2017 \
      --results-dir results/davis2017-val --checkpoint shls.pth \
      --config.eval.superpixels.method=precomputed \
      --config.eval.superpixels.root=DAVIS2017/superpixels/isec

Expected (published SHLS, ISEC superpixels at 480p): J&F-Mean 68.5, J-Mean 68.3, F-Mean 68.7.
Without precomputed maps, SLIC with about 1000 segments per frame is used instead.
"""

import ml_collections

from configs import default


def get_config() -> ml_collections.ConfigDict:
  config = default.get_config()
  config.eval = ml_collections.ConfigDict()
  config.eval.davis_root = ''  # set by --davis-root
  config.eval.split = 'val'  # ImageSets/2017/<split>.txt; also names the CSVs
  config.eval.sequences = ''  # comma-separated names instead of the split ('' = whole split)
  config.eval.resolution = '480p'  # JPEGImages/<resolution>
  config.eval.single_object = False  # merge all objects into one (DAVIS-2016 protocol)
  # (H, W) to segment at, e.g. (240, 432); () = the annotation resolution. Results are always
  # written and scored at the annotation resolution.
  config.eval.size = ()
  config.eval.workers = 2  # scoring threads
  config.eval.score = True  # False for test splits: segment only (annotated first frames)

  config.eval.superpixels = ml_collections.ConfigDict()
  config.eval.superpixels.method = 'slic'  # 'slic', 'isec' or 'precomputed'
  config.eval.superpixels.n_segments = 1000  # SLIC only: about the ISEC count at 480p
  config.eval.superpixels.root = ''  # 'precomputed': maps at <root>/<sequence>/<frame>.png
  return config
