"""The superpixel pools of `pools` traced in JAX, at static shapes: each superpixel's class and
the frame-0 merge with the annotation, for superpixels computed inside the training step and for
the frame rules of the on-device memory.

Conventions as `pools`: superpixel maps [H, W] int32 labelled 1..n <= N (N slots, static), class
maps [H, W] int32 with 0..C.
"""

import jax
import jax.numpy as jnp

from shls_jax.ops import components


def mode_pools(spx: jax.Array, classes: jax.Array, num_segments: int, num_cls: int) -> jax.Array:
  """Traced `pools.mode_pools`: [N] int32 most frequent class (0..C) of each superpixel slot,
  ties to the smaller class; slots without pixels get 0."""
  counts = jax.ops.segment_sum(
    jax.nn.one_hot(classes.reshape(-1), num_cls + 1, dtype=jnp.int32),
    spx.reshape(-1) - 1,
    num_segments=num_segments,
  )
  return jnp.argmax(counts, axis=1).astype(jnp.int32)


def merge_with_annotation(
  spx: jax.Array, label: jax.Array, num_segments: int, num_cls: int
) -> tuple[jax.Array, jax.Array]:
  """Traced `pools.merge_with_annotation`: frame-0 superpixels made to follow the annotation.

  A pixel whose class equals its superpixel's pool keeps its superpixel; the other pixels of
  each class form new superpixels, one per 4-connected piece. Deviation from the host merge:
  ids are numbered in raster order of each superpixel's first pixel, and the host merge's id
  coincidences (a new piece's id equal to an existing id, which then fuse) do not occur, so
  the partition is the host's whenever the host has no such coincidence.

  Args:
    spx: [H, W] int32 superpixels 1..n, n <= num_segments.
    label: [H, W] int32 classes 1..num_cls.
    num_segments: slots N of `spx`.
    num_cls: classes C (background included).

  Returns:
    (merged [H, W] int32 dense 1..m; m, an int32 scalar, may exceed num_segments).
  """
  height, width = spx.shape
  pool_map = mode_pools(spx, label, num_segments, num_cls)[spx - 1]
  kept = label == pool_map
  flat = jnp.arange(height * width, dtype=jnp.int32).reshape(height, width)
  # A kept superpixel is named by its first kept pixel, a piece by its first pixel: both are
  # pixel indices, so one renumbering gives every merged superpixel a dense id.
  first_kept = jax.ops.segment_min(
    jnp.where(kept, flat, height * width).reshape(-1), spx.reshape(-1) - 1, num_segments
  )
  pieces, _ = components.connected_components(jnp.where(kept, -1, label))
  return components.dense_ids(jnp.where(kept, first_kept[spx - 1], pieces))


__all__ = ['merge_with_annotation', 'mode_pools']
