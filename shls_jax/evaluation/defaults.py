"""Default evaluation settings (`config.eval`): plain data, importable without JAX, faiss or
TensorFlow so that config files load instantly."""

import ml_collections

# How frame 0's mask is had (`eval.first_mask`).
FIRST_MASKS = ('annotation', 'auto')


def superpixels_config() -> ml_collections.ConfigDict:
  """Where each frame's superpixels come from (`superpixels.frame_superpixels`)."""
  config = ml_collections.ConfigDict()
  # 'slic' (scikit-image, host), 'isec', 'precomputed', 'slic-jax' (computed on the device inside
  # the frame step) or 'auto' (slic-jax in fast mode on an accelerator, slic otherwise).
  config.method = 'auto'
  config.slic_segments = 1000  # both SLICs: about the ISEC count at 480p
  config.root = ''  # 'precomputed': maps at <root>/<sequence>/<frame>.png
  return config


def davis_config() -> ml_collections.ConfigDict:
  """DAVIS semi-supervised evaluation (`evaluation.evaluator`), DAVIS-2017 val by default."""
  config = ml_collections.ConfigDict()
  config.davis_root = ''  # set by --davis_root
  config.split = 'val'  # ImageSets/2017/<split>.txt; also names the CSVs
  config.sequences = ''  # comma-separated names instead of the split ('' = whole split)
  config.resolution = '480p'  # JPEGImages/<resolution>
  config.single_object = False  # merge all objects into one (DAVIS-2016 protocol)
  # 'annotation' (semi-supervised) or 'auto': frame 0's built-in salient object as the one object
  # (`saliency.salient_object`; unsupervised, with single_object only).
  config.first_mask = 'annotation'
  # (H, W) to segment at, e.g. (240, 432); () = the annotation resolution. Results are always
  # written and scored at the annotation resolution.
  config.size = ()
  config.workers = 2  # scoring threads
  config.score = True  # False for test splits: segment only (annotated first frames)
  config.superpixels = superpixels_config()
  return config


def youtube_config() -> ml_collections.ConfigDict:
  """YouTube-VOS valid (`evaluation.youtube_evaluator`): segmented and zipped, scored by the
  server."""
  config = ml_collections.ConfigDict()
  config.dataset = 'youtube_vos'
  config.youtube_root = ''  # set by --youtube_root
  config.split = 'valid'  # <youtube_root>/<split>/; also names the zip
  config.videos = ''  # comma-separated names instead of every video of meta.json
  # Segment every frame of <youtube_root>/<split>_all_frames/JPEGImages and keep the listed ones.
  config.all_frames = False
  # (H, W) to segment at, e.g. (480, 864); () = the annotation resolution. Masks are always
  # written at the annotation resolution.
  config.size = ()
  config.superpixels = superpixels_config()
  return config
