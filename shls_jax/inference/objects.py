"""Objects of a video: their ids in tracking order, and frames where some objects' masks are given.

Object ids are the masks' values (0 = background); the engine tracks id i as class (its position
in tracking order) + 2, class 1 being the background.
"""

from typing import Mapping

import numpy as np

from shls_jax.model import decoder

# The lowest aggregated log-odds: the soft aggregation's clamped probability.
LOW_LOGODDS = np.float32(np.log(decoder.PROBABILITY_CLAMP / (1 - decoder.PROBABILITY_CLAMP)))


def with_given_masks(logodds: np.ndarray, given: np.ndarray) -> np.ndarray:
  """Log-odds of a frame where some objects' masks are given: [H, W, C] and a class map
  [H, W] (0 = not given) -> [H, W, C'], C' = max(C, largest given class).

  As if the soft aggregation had each given object's probability equal to its given mask and
  every other object's probability zero on the given pixels: given pixels go to their object,
  the prediction of the other pixels is kept, and a given object that was tracked already
  (class <= C) loses its predicted pixels outside its mask.
  """
  num_cls = max(logodds.shape[-1], int(given.max()))
  out = np.full(logodds.shape[:2] + (num_cls,), LOW_LOGODDS, np.float32)
  out[..., : logodds.shape[-1]] = logodds
  covered = given > 0
  classes = np.unique(given[covered])
  reset = classes[classes <= logodds.shape[-1]]
  if reset.size:
    kept = np.setdiff1d(np.arange(2, logodds.shape[-1] + 1), reset)
    background = np.prod(1 - 1 / (1 + np.exp(-logodds[..., kept - 1])), axis=-1)
    background = np.clip(background, decoder.PROBABILITY_CLAMP, 1 - decoder.PROBABILITY_CLAMP)
    out[..., 0] = np.log(background / (1 - background))
  out[covered] = LOW_LOGODDS
  for cls in classes:
    out[..., cls - 1] = np.where(given == cls, -LOW_LOGODDS, LOW_LOGODDS)
  return out


def tracked_ids(first_mask: np.ndarray, later: Mapping[int, np.ndarray]) -> np.ndarray:
  """Object ids in the order they are tracked: the first mask's sorted, then each later frame's
  new ones sorted."""
  ids = [int(i) for i in np.unique(first_mask) if i > 0]
  for mask in later.values():
    ids += [int(i) for i in np.unique(mask) if i > 0 and i not in ids]
  return np.array(ids, np.int64)
