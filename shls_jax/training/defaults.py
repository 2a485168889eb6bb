"""Default settings of the training step (`config.step`): plain data, importable without JAX
or TensorFlow so that config files load instantly."""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  """Settings `train_step` and `create_train_state` read (the paper's end-to-end training)."""
  config = ml_collections.ConfigDict()
  config.learning_rate = 1e-4  # per device; see scale_learning_rate
  config.scale_learning_rate = True  # multiply by jax.device_count(), as the reference
  config.crop_size = (128, 128)  # static (h, w) of every object crop, multiples of 4
  config.object_capacity = 3  # objects decoded per frame (classes 2..object_capacity + 1)
  config.use_ntxent = True
  config.use_ce = True
  config.ntxent_mode = 'sampled'  # 'sampled' (16 random triplets per anchor) or 'all_pairs'
  config.triplets_per_anchor = 16
  config.ntxent_temperature = 0.07
  config.kmeans_iterations = 10  # spherical k-means iterations of the device memory
  config.frozen = ()  # names of FROZEN_GROUPS: no updates, BatchNorms in eval mode
  # > 0: clip the averaged gradients of the trained groups to this global L2 norm before Adam.
  # The reference does not clip; an option for learning rates well above the paper's, where
  # crops with confidently wrong decoder outputs give CE and gradient-norm spikes.
  config.grad_clip_norm = 0.0
  # > 0: keep an exponential moving average of the parameters and BatchNorm statistics with
  # this decay (`train_step.update_average`); validation, the best checkpoint and the export use
  # it. 0 = the reference: the last iterate with its running statistics. With one sequence per
  # step the last iterate is a noisy sample (neighbouring checkpoints differ by up to 0.3
  # validation J&F) and running statistics average about 10 single-sample updates; see README,
  # "Training stability".
  config.ema_decay = 0.0
  # How convolution kernel gradients are computed (`backbone.conv_weight_gradient`): 'xla',
  # 'rows' (row-shifted matmuls: the same sums in another order; on a 2-core CPU 19.3 s instead
  # of 25.0 s per 256x256 step, README "Benchmarks") or 'auto' ('rows' on CPU, 'xla'
  # elsewhere, where it is unmeasured). The reference step mode always uses 'xla'.
  config.conv_weight_gradient = 'auto'
  # How the step spans the devices: 'pmap' (the design's step) or 'jit' (the same step jitted
  # over a Mesh of every device, the batch split with NamedSharding; `sharded_train_step`).
  config.parallel = 'pmap'
  # Compute dtype of the convolutions and dense layers: 'float32' (the reference) or 'bfloat16'
  # (`backbone.compute_dtype`: parameters, optimiser state, BatchNorm statistics, superpixel
  # pooling and the losses stay float32).
  config.dtype = 'float32'
  return config
