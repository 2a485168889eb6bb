"""YouTube-VOS 2018 / 2019 valid: segment the split and write the server's zip.

  python evaluate.py --config configs/youtube_vos.py --youtube-root YouTubeVOS2019 \
      --results-dir results/ytvos19-valid --checkpoint shls.pth --zip

`--youtube-root` holds `valid/{JPEGImages,Annotations,meta.json}` (and, for
`--config.eval.all_frames=True`, `valid_all_frames/JPEGImages`); `--davis-root` is not needed.
Masks go to `<results-dir>/Annotations/<video>/<frame>.png` for the frames meta.json lists, and
`--zip` writes `<results-dir>/submission-valid.zip` (`Annotations/...` at its root), which the
server scores. Objects that appear after a video's first frame join at their first annotated
frame (see `shls_jax.evaluation.youtube_evaluator`). The 2018 and 2019 releases share the layout.
"""

import ml_collections

from configs import default


def get_config() -> ml_collections.ConfigDict:
  config = default.get_config()
  # Static shapes: YouTube-VOS frames are 720p and ROIs vary from frame to frame.
  config.inference.mode = 'fast'
  config.eval = ml_collections.ConfigDict()
  config.eval.dataset = 'youtube_vos'
  config.eval.youtube_root = ''  # set by --youtube-root
  config.eval.split = 'valid'  # <youtube_root>/<split>/; also names the zip
  config.eval.videos = ''  # comma-separated names instead of every video of meta.json
  # Segment every frame of <youtube_root>/<split>_all_frames/JPEGImages and keep the listed ones.
  config.eval.all_frames = False
  # (H, W) to segment at, e.g. (480, 864); () = the annotation resolution. Masks are always
  # written at the annotation resolution.
  config.eval.size = ()

  config.eval.superpixels = ml_collections.ConfigDict()
  config.eval.superpixels.method = 'slic'  # 'slic', 'isec' or 'precomputed'
  config.eval.superpixels.n_segments = 1000  # SLIC only
  config.eval.superpixels.root = ''  # 'precomputed': maps at <root>/<video>/<frame>.png
  return config
