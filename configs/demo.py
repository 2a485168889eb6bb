"""Tiny end-to-end demo on synthetic data (`make demo`): a few minutes of training on a 2-core CPU.

  python -m shls_jax.datasets.synthetic --stills demo_out/stills --videos demo_out/videos \
      --num-stills 200 --still-size 96 96 --num-videos 3 --frames 8 --video-size 96 96
  python train.py --config configs/demo.py --workdir demo_out/workdir

Trains on pseudo-sequences of the synthetic stills at 64x64 and validates on the synthetic
videos before training (step 0, the untrained initial variables) and at the end; the last log
line lists the validation J&F-Mean by step.
"""

import ml_collections

from configs import msra10k


def get_config() -> ml_collections.ConfigDict:
  config = msra10k.get_config()
  config.data.root = "demo_out/stills"
  config.data.split = "train"
  config.data.image_size = (64, 64)
  config.data.seq_len = 3
  config.data.slic_segments = 40
  config.data.spx_capacity = 96
  config.data.num_parallel_calls = 2

  config.step.crop_size = (32, 32)
  config.step.object_capacity = 3
  config.step.learning_rate = 1e-3
  config.step.kmeans_iterations = 5

  config.num_train_steps = 40
  config.log_every_steps = 5
  config.checkpoint_every_steps = 20
  config.eval_every_steps = 0  # validation at the end only
  config.eval_at_start = True

  config.eval.davis_root = "demo_out/videos"
  config.eval.sequences = ""  # the whole synthetic val split
  config.eval.size = ()
  config.eval.workers = 1
  config.eval.superpixels.n_segments = 100
  config.inference.mode = "fast"
  config.inference.crop_size = (48, 48)
  config.inference.superpixel_bucket = 64
  config.inference.superpixel_capacity = 192
  return config
