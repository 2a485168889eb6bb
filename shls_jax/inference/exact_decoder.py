"""Exact-mode decoding: the reference's per-object decoder passes, each on crops of its ROI's own
size.

Each object's crops have its ROI's size, so the decoder compiles once per new crop shape (seconds
each on CPU; most frames bring a new shape). The results are the reference's (parity).
"""

import collections
import time
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from shls_jax.crops import object_crops
from shls_jax.inference.state import TRACE_COUNTS, Carry, Embedding, FirstFrame, first_of
from shls_jax.memory.frame_rules import MemoryPrediction
from shls_jax.model import decoder, shls


def decode_object_logits(variables, inputs: object_crops.ObjectInputs) -> jax.Array:
  """Decoder logits [h, w, 2] of one object's inputs (traceable; counted in TRACE_COUNTS)."""
  TRACE_COUNTS['decode'] += 1
  return shls.decode_object(variables, inputs)[0]


_decode_object = jax.jit(decode_object_logits)


@jax.jit
def _aggregate(frame_logits):
  TRACE_COUNTS['aggregate'] += 1
  return decoder.aggregate_objects(frame_logits)


def object_inputs(
  firsts: Sequence[FirstFrame], carry: Carry, emb: Embedding, pred: MemoryPrediction, k: int
):
  """Exact-mode decoder inputs of object k (class k + 2): (ObjectInputs, pads)."""
  first, i = first_of(firsts, k)
  return object_crops.object_inputs(
    object_crops.CropSource(first.l1, first.l4, first.boxes[i], plane=first.planes[..., i]),
    object_crops.CropSource(
      carry.l1,
      carry.l4,
      carry.boxes[k],
      plane=jnp.asarray(carry.logodds[..., k + 1]),
      attention=carry.attmaps[k],
    ),
    object_crops.CropSource(emb.l1, emb.l4, pred.boxes[k], attention=pred.attmaps[k]),
  )


class ExactDecoder:
  """Decodes every object of a frame on its own crops, then aggregates (the reference).

  Attributes:
    canvases: always empty (exact mode has no canvases); kept so that engines of both modes
      report the same fields.
  """

  def __init__(self, variables, timings: collections.defaultdict):
    """variables: SHLS {'params', 'batch_stats'}; timings: the engine's seconds per stage, to
    which 'decode' and 'aggregation' are added."""
    self.variables = variables
    self.timings = timings
    self.canvases = collections.Counter()

  def attention(self, spx: np.ndarray, pred: MemoryPrediction) -> Optional[jax.Array]:
    """Exact mode crops each object's attention map from its ROI: no full-frame maps."""
    del spx, pred
    return None

  def decode(
    self,
    firsts: Sequence[FirstFrame],
    carry: Carry,
    emb: Embedding,
    spx: np.ndarray,
    pred: MemoryPrediction,
  ) -> tuple[np.ndarray, None]:
    """Aggregated log-odds [H, W, C] float32 of the frame, and no full-frame attention maps."""
    del spx
    start = time.perf_counter()
    frame_hw = carry.mask.shape
    frame_logits = []
    for k, box in enumerate(pred.boxes):
      inputs, pads = object_inputs(firsts, carry, emb, pred, k)
      logits = _decode_object(self.variables, inputs)
      frame_logits.append(object_crops.paste_back(logits, pads, box, frame_hw))
    frame_logits = jax.block_until_ready(jnp.stack(frame_logits))
    middle = time.perf_counter()
    logodds = np.asarray(_aggregate(frame_logits))
    self.timings['decode'] += middle - start
    self.timings['aggregation'] += time.perf_counter() - middle
    return logodds, None
