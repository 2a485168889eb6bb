"""Tiny end-to-end demo on synthetic data (`make demo`): a few minutes of training on a 2-core CPU.

  python -m shls_jax.data.synthetic --stills demo_out/stills --videos demo_out/videos \
      --num-stills 200 --still-size 96 96 --num-videos 8 --frames 8 --objects 1 \
      --video-size 96 96
  python train.py --config configs/demo.py --workdir demo_out/workdir

Trains 100 steps (about 1 s each after a ~30 s compilation) on pseudo-sequences of the synthetic
stills at 64x64 with 16x16 decoder crops, and validates on the eight one-object synthetic videos
before training (step 0, the untrained initial variables) and at the end; the last lines printed
list the validation J&F-Mean by step, the copy-first-mask baseline of the same videos and the
path of the learning curve (demo_out/workdir/learning_curve.png). Expected: about 0.2 untrained,
about 0.55 trained, baseline 0.50.

What to expect when changing it: validation right after the first steps is near 0, because the
backbone's BatchNorm running statistics move 10% per step from their initial (0, 1) and are a
mix of both for tens of steps. Longer runs keep improving (about 0.64 at 200 steps) but not
monotonically: with batch 1 the decoder's parameters swing (0.23 at step 150, recovered by 200),
so compare runs on many validation videos. The paper's learning rate (1e-4) is kept: at 1e-3 the
decoder saturates (CE spikes near 10) and the trained model predicts background only.
"""

import ml_collections

from configs import msra10k


def get_config() -> ml_collections.ConfigDict:
  config = msra10k.get_config()
  config.data.root = 'demo_out/stills'
  config.data.split = 'train'
  config.data.image_size = (64, 64)
  config.data.seq_len = 3
  config.data.slic_segments = 40
  config.data.spx_capacity = 96
  config.data.num_parallel_calls = 2

  config.step.crop_size = (16, 16)
  config.step.object_capacity = 3
  config.step.learning_rate = 1e-4
  config.step.kmeans_iterations = 5

  config.num_train_steps = 100
  config.log_every_steps = 10
  config.checkpoint_every_steps = 100
  config.eval_every_steps = 0  # validation at the end only
  config.eval_at_start = True

  config.eval.davis_root = 'demo_out/videos'
  config.eval.sequences = ''  # the whole synthetic val split
  config.eval.size = ()
  config.eval.workers = 1
  config.eval.superpixels.n_segments = 100
  config.inference.mode = 'fast'
  config.inference.crop_size = (48, 48)
  config.inference.superpixel_bucket = 64
  config.inference.superpixel_capacity = 192
  return config
