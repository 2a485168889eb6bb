"""The contract of an inference memory, which the propagation engine types against.

Two memories implement it: `faiss_memory.FaissMemory` (numpy + faiss, the reference's) and
`jax_memory.JaxMemory` (kNN and k-means in JAX on the accelerator). Both keep their state in an
immutable value that every call takes and returns, and share the frame rules of `frame_rules`
(pre-segmentation cleaning, ROIs, attention maps, confident superpixels).

Conventions: classes 1..C with 1 = background; features [N, D] float32 with row n - 1 =
superpixel n of a dense [H, W] superpixel map 1..N; pools [N] int classes.
"""

from typing import Any, Optional, Protocol

import numpy as np

from shls_jax.memory.frame_rules import MemoryPrediction

# `config.inference.memory`: 'faiss' (host) or 'device' (JAX).
KINDS = ('faiss', 'device')


class InferenceMemory(Protocol):
  """Fit on frame 0, predict each frame, memorise its confident superpixels, add late objects."""

  def fit(self, features: np.ndarray, pools: np.ndarray, num_cls: int) -> Any:
    """State from frame 0: features [N, D], pools [N] in 1..num_cls, every class present."""

  def predict(
    self,
    state: Any,
    features: np.ndarray,
    spx: np.ndarray,
    prev_mask: np.ndarray,
    annotation: Optional[np.ndarray] = None,
  ) -> tuple[Any, MemoryPrediction]:
    """(state, prediction) of one frame from its features [N, D], superpixels [H, W] and the
    previous class map [H, W]; the first call after `fit` records frame 0's object boxes."""

  def memorise_confident(
    self,
    state: Any,
    features: np.ndarray,
    spx: np.ndarray,
    preseg: np.ndarray,
    confident: np.ndarray,
  ) -> Any:
    """State with the confident superpixels ([N] bool) added under their `preseg` pools."""

  def add_classes(
    self, state: Any, features: np.ndarray, pools: np.ndarray, mask: np.ndarray
  ) -> Any:
    """State with new classes C + 1 .. C' (objects given after frame 0) fitted from their
    features [M, D] and pools [M], their minimum ROI sizes from the class map `mask`."""


def build(config) -> InferenceMemory:
  """The memory `config.memory` names ('faiss' or 'device', with `config.device_kmeans_iterations`).

  Each memory's module is imported here only when chosen: faiss is the host memory's need alone.
  """
  if config.memory == 'faiss':
    from shls_jax.memory import faiss_memory

    return faiss_memory.FaissMemory()
  if config.memory == 'device':
    from shls_jax.memory import jax_memory

    return jax_memory.JaxMemory(config.device_kmeans_iterations)
  raise ValueError(f'inference memory must be one of {KINDS}, got {config.memory!r}')
