"""Default SHLS configuration: the network and the inference settings of the reference.

Variants import this file and override a few fields; every field can be overridden on the command
line (`--config.inference.mode=fast`).
"""

import ml_collections

from shls_jax.inference import defaults as inference_defaults


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()

  # Propagation engine (`shls_jax.inference.engine.Propagator` takes this block; its fields and the
  # modes are documented in `shls_jax.inference.defaults`).
  config.inference = inference_defaults.get_config()
  return config
