"""Default data settings of SHLS training (`config.data`): plain data, importable without
TensorFlow or JAX so that config files load instantly."""

import ml_collections

# Normalisation of MSRA10K stills (the reference's statistics).
MSRA_MEAN = (0.4532, 0.4335, 0.3921)
MSRA_STD = (0.3025, 0.2918, 0.3122)


def get_config() -> ml_collections.ConfigDict:
  """Data settings of SHLS training (pseudo-sequences of MSRA10K-like still images)."""
  config = ml_collections.ConfigDict()
  config.image_size = (256, 256)  # (H, W) of the frames
  config.seq_len = 3  # frames T per pseudo-sequence
  # > 0: each still (and its mask) is resized to this shorter side before its pseudo-sequence is
  # made; 0 keeps it as stored (the reference). Later frames are image_size crops of the still
  # at its own scale, so the still-to-frame ratio decides how much they zoom in: MSRA10K stills
  # (about 300x400 for 256x256 frames) keep most of the object in view, while a 480p photo under
  # 128x128 frames would give crops of a few percent of it.
  config.still_short_side = 0
  config.max_labels = 4  # labels (background included) pasting aims for
  config.slic_segments = 300
  config.slic_compactness = 20.0
  config.slic_sigma = 1.0
  config.superpixel_capacity = 512  # superpixels per frame after padding
  # True: the pipeline ships frames and labels only and the training step computes the
  # superpixels with the JAX SLIC on the device (`step_inputs`; its deviations are listed there).
  config.superpixels_in_step = False
  # Objects per sequence after padding (background excluded); in a training config, a reference
  # to `step.object_capacity` (configs/msra10k.py).
  config.object_capacity = 3
  config.max_redraws = 10  # replacements of an over-capacity sample before giving up
  config.mean = MSRA_MEAN
  config.std = MSRA_STD
  return config
