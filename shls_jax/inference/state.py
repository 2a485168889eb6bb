"""What the propagation engine hands between its parts: one frame's features, the first-frame
state of each group of objects, the carry from frame t to t + 1, and one frame's output.

Conventions (as `engine`): class maps are [H, W] int with 1 = background, 2.. = objects; log-odds
channel j = class j + 1; boxes are [rmin, rmax, cmin, cmax] with exclusive max.
"""

import collections
import dataclasses
from typing import Any, List, Optional, Sequence, Tuple

import jax
import numpy as np

from shls_jax.memory.frame_rules import MemoryPrediction

# How many times each jitted step of inference was traced ('embed', 'decode', 'aggregate'), for
# all engines together (they share compilations); it grows only on recompilation.
TRACE_COUNTS = collections.Counter()


@dataclasses.dataclass
class Embedding:
  """One frame's network features: l1 [H, W, 67], l4 [h4, w4, 259] (device arrays),
  superfeatures [N, 32] float32 (host)."""

  l1: jax.Array
  l4: jax.Array
  superfeatures: np.ndarray


@dataclasses.dataclass
class FirstFrame:
  """What the decoder calls of some objects take from the frame where they were given: frame 0
  for the objects of the first mask, the first annotated frame of objects that appear later.

  Attributes:
    l1, l4: that frame's features (on its superpixels merged with the annotation).
    planes: [H, W, K_g] float32 the objects' given masks.
    boxes: [K_g, 4] int32 their ROIs in that frame (annotation boxes).
    first_object: index k (class k + 2) of the first of them; they are objects
      first_object .. first_object + K_g - 1.
  """

  l1: jax.Array
  l4: jax.Array
  planes: jax.Array
  boxes: np.ndarray
  first_object: int = 0

  @property
  def objects(self) -> slice:
    return slice(self.first_object, self.first_object + len(self.boxes))


def first_of(firsts: Sequence[FirstFrame], k: int) -> Tuple[FirstFrame, int]:
  """The `FirstFrame` holding object k, and k's position in it."""
  for first in firsts:
    if first.first_object <= k < first.objects.stop:
      return first, k - first.first_object
  raise ValueError(f'object {k} has no first-frame state')


@dataclasses.dataclass
class Carry:
  """State handed from frame t to frame t + 1.

  Attributes:
    memory: the memory after frame t's update (the state of the engine's `InferenceMemory`).
    l1, l4: frame t's features.
    logodds: [H, W, C] float32 frame t's log-odds (frame 0: the one-hot annotation).
    mask: [H, W] int32 class map of frame t (frame 0: the annotation).
    boxes: [K, 4] int32 frame t's ROIs.
    attmaps: K arrays [h_k, w_k, 4] float32, frame t's attention maps cropped to its ROIs.
    attention: [K, H, W, 4] float32 full-frame attention maps (fast mode only, else None).
  """

  memory: Any
  l1: jax.Array
  l4: jax.Array
  logodds: np.ndarray
  mask: np.ndarray
  boxes: np.ndarray
  attmaps: List[np.ndarray]
  attention: Optional[jax.Array] = None


@dataclasses.dataclass
class FrameOutput:
  """Result of one frame t >= 1: the memory prediction, log-odds [H, W, C] float32, mask
  [H, W] int32 (argmax + 1), confident flags [N] bool (None after the last frame)."""

  prediction: MemoryPrediction
  logodds: np.ndarray
  mask: np.ndarray
  confident: Optional[np.ndarray]
