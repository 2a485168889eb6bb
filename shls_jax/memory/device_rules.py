"""The frame rules of `frame_rules` traced in JAX, for fast mode's one-step frames on the device:
pre-segmentation cleaning, ROIs and full-frame attention maps (the pools are
`superpixels.pools_jax`'s and the confident superpixels `training_memory`'s).

Static shapes: C classes (background included) and N superpixel slots per call; superpixel maps
are [H, W] int32 labelled 1..n <= N.

One deviation, measured in the README ("The frame on the accelerator"): the convex hull of the
cleaning step is the intersection of `rules.HULL_DIRECTIONS` half-planes, each the support line
of the qualifying pixels (as squares, which is what `convex_hull_image` takes the hull of) in one
direction. That polygon holds the exact hull and exceeds it only near the hull's vertices, by at
most r (1 / cos(pi / HULL_DIRECTIONS) - 1) for a hull of radius r: 0.5 pixel at r = 400 with 64
directions. The 4-connected components are exact (`ops.components`).
"""

import jax
import jax.numpy as jnp
import numpy as np

from shls_jax.memory import rules, training_memory
from shls_jax.ops import components


def _hull_directions(count: int) -> np.ndarray:
  """[count, 2] unit (row, col) directions spread over the full circle."""
  angles = np.arange(count) * (2 * np.pi / count)
  return np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)


def clean_preseg(
  preseg: jax.Array,
  prev_mask: jax.Array,
  num_cls: int,
  min_overlap: float = rules.MIN_OVERLAP,
  directions: int = rules.HULL_DIRECTIONS,
) -> jax.Array:
  """Traced `rois.clean_preseg`: object pixels outside the hull of their class' components that
  overlap the previous mask by more than `min_overlap` of its area become 0.

  Args:
    preseg: [H, W] int32 class map 1..C.
    prev_mask: [H, W] int32 class map of the previous frame.
    num_cls: static class count C.
    min_overlap: overlap share a component must exceed.
    directions: static number of support half-planes of each hull.

  Returns:
    [H, W] int32 cleaned class map (0 = removed).
  """
  height, width = preseg.shape
  roots, _ = components.connected_components(preseg, max_iterations=height + width)
  flat_roots = roots.reshape(-1)
  objects = (preseg >= 2).reshape(-1)
  overlap = jax.ops.segment_sum(
    (objects & (preseg == prev_mask).reshape(-1)).astype(jnp.float32),
    flat_roots,
    num_segments=height * width,
  )
  prev_area = jnp.bincount(prev_mask.reshape(-1), length=num_cls + 1).astype(jnp.float32)
  own_area = prev_area[preseg.reshape(-1)]
  qualifies = objects & (overlap[flat_roots] / jnp.maximum(own_area, 1.0) > min_overlap)

  units = jnp.asarray(_hull_directions(directions))
  rows, cols = jnp.meshgrid(
    jnp.arange(height, dtype=jnp.float32), jnp.arange(width, dtype=jnp.float32), indexing='ij'
  )
  projections = rows.reshape(-1, 1) * units[:, 0] + cols.reshape(-1, 1) * units[:, 1]
  # Support of a pixel's square: its centre's projection plus half its extent along the line.
  reach = 0.5 * (jnp.abs(units[:, 0]) + jnp.abs(units[:, 1]))
  support = jax.ops.segment_max(
    jnp.where(qualifies[:, None], projections + reach, -jnp.inf),
    jnp.where(qualifies, preseg.reshape(-1), 0),
    num_segments=num_cls + 1,
  )
  inside = jnp.all(projections <= support[preseg.reshape(-1)] + 1e-3, axis=1)
  keep = ~objects | inside
  return jnp.where(keep, preseg.reshape(-1), 0).reshape(height, width).astype(jnp.int32)


def _grow_to_min_size(box: jax.Array, min_box: jax.Array, shape: tuple[int, int]) -> jax.Array:
  """Traced `rois.grow_to_min_size`."""
  out = []
  for axis, size in enumerate(shape):
    lo, hi = box[2 * axis], box[2 * axis + 1]
    deficit = (min_box[2 * axis + 1] - min_box[2 * axis]) - (hi - lo)
    half = jnp.maximum(deficit, 0) // 2
    out += [jnp.maximum(lo - half, 0), jnp.minimum(hi + half, size)]
  return jnp.stack(out).astype(jnp.int32)


def boxes(preseg: jax.Array, initial_boxes: jax.Array, num_cls: int) -> jax.Array:
  """Traced inference ROIs of `frame_rules.prediction_from_scores` (no annotation): [C - 1, 4]
  int32 boxes of objects 2..C in the cleaned `preseg`, widened 0.15 per side and grown to the
  minimum sizes `initial_boxes` [C - 1, 4]; a vanished object gets the full frame."""

  def one(cls, min_box):
    present = preseg == cls
    box = training_memory.annotation_box(present, widening=rules.INFERENCE_WIDENING)
    grown = _grow_to_min_size(box, min_box, preseg.shape)
    return jnp.where(jnp.any(present), grown, box)

  return jax.vmap(one)(jnp.arange(2, num_cls + 1), initial_boxes)


def attention(spx: jax.Array, knn_scores: jax.Array, cent_scores: jax.Array) -> jax.Array:
  """Full-frame attention maps [C - 1, H, W, 4] of objects 2..C (`fast_decoder`'s layout, the
  channels of `rois.attention_maps`) from the scores [N, C] of the superpixels of spx [H, W]."""
  valid = jnp.ones((knn_scores.shape[1],), bool)
  table = training_memory.attention_table(knn_scores, cent_scores, valid)
  return jnp.moveaxis(training_memory.pixel_map(table, spx), 2, 0)
