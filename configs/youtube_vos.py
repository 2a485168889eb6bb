"""YouTube-VOS 2018 / 2019 valid: segment the split and write the server's zip.

  shls-evaluate --config configs/youtube_vos.py --youtube_root YouTubeVOS2019 \
      --results_dir results/ytvos19-valid --checkpoint shls.pth --zip

`--youtube_root` holds `valid/{JPEGImages,Annotations,meta.json}` (and, for
`--config.eval.all_frames=True`, `valid_all_frames/JPEGImages`); `--davis_root` is not needed.
Masks go to `<results-dir>/Annotations/<video>/<frame>.png` for the frames meta.json lists, and
`--zip` writes `<results-dir>/submission-valid.zip` (`Annotations/...` at its root), which the
server scores. Objects that appear after a video's first frame join at their first annotated
frame (see `shls_jax.evaluation.youtube_evaluator`). The 2018 and 2019 releases share the layout.
"""

import ml_collections

from configs import default
from shls_jax.evaluation import defaults as eval_defaults


def get_config() -> ml_collections.ConfigDict:
  config = default.get_config()
  # Static shapes: YouTube-VOS frames are 720p and ROIs vary from frame to frame.
  config.inference.mode = 'fast'
  config.eval = eval_defaults.youtube_config()
  return config
