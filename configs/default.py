"""Default SHLS configuration: the network and the inference settings of the reference.

Variants import this file and override a few fields; every field can be overridden on the command
line (`--config.model.sf_channels=32`).
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()

  # Network (section 1, 2, 6 of the reference).
  config.model = ml_collections.ConfigDict()
  config.model.sf_channels = 32  # superfeature size S
  config.model.dtype = "float32"

  # Frame normalisation (DAVIS statistics).
  config.mean = (0.4512, 0.4448, 0.4111)
  config.std = (0.2485, 0.2403, 0.2617)
  return config
