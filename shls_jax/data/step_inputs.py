"""Superpixels computed inside the training step (`config.data.superpixels_in_step`).

The pipeline then ships each sequence's frames as uint8 with their labels only; the step
normalises the frames, computes every frame's SLIC with the JAX SLIC, merges frame 0's with its
labels and pools each superpixel's class, on the device. The host keeps the warps and pastes.

Deviations from host superpixels (README, "Training"): the JAX SLIC's map (as good a map by
boundary recall, undersegmentation error and ASA, not the same one), the traced merge's
numbering (`pools_jax.merge_with_annotation`), and over-capacity frames: the host pipeline
redraws such a sample, the step merges the superpixels past `capacity` into the last slot and
counts the frame in the metric `spx_overflow` (the fraction of frames it happened to).
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_collections

from shls_jax.superpixels import pools_jax, slic_jax


class Settings(NamedTuple):
  """What the step needs to complete a batch (hashable: it keys the step's compilation).

  Attributes:
    n_segments, compactness, sigma: SLIC settings.
    capacity: superpixel slots N per frame.
    num_cls: classes C, background included (object capacity + 1).
    mean, std: per-channel normalisation of frames in [0, 1].
  """

  n_segments: int
  capacity: int
  compactness: float
  sigma: float
  num_cls: int
  mean: tuple[float, float, float]
  std: tuple[float, float, float]


def settings(data_config: ml_collections.ConfigDict) -> Settings | None:
  """The step's settings of `config.data`, or None when superpixels come from the host."""
  if not data_config.get('superpixels_in_step', False):
    return None
  return Settings(
    n_segments=int(data_config.slic_segments),
    capacity=int(data_config.superpixel_capacity),
    compactness=float(data_config.slic_compactness),
    sigma=float(data_config.slic_sigma),
    num_cls=int(data_config.object_capacity) + 1,
    mean=tuple(float(x) for x in data_config.mean),
    std=tuple(float(x) for x in data_config.std),
  )


def sequence_superpixels(frames: jax.Array, label: jax.Array, settings: Settings):
  """Superpixels of one pseudo-sequence.

  Args:
    frames: [T, H, W, 3] uint8 RGB.
    label: [T, H, W] int32 classes 1..C.
    settings: see `Settings`.

  Returns:
    (spx [T, H, W] int32 dense 1..N_t, frame 0 merged with its labels; pools [T, N] int32,
    0 past N_t; spx_valid [T, N] bool; overflow [T] bool, frames whose superpixels exceeded N).
  """
  cap = settings.capacity
  spx, counts = jax.vmap(
    lambda f: slic_jax.segment(
      f,
      n_segments=settings.n_segments,
      capacity=cap,
      compactness=settings.compactness,
      sigma=settings.sigma,
    )
  )(frames)
  merged, merged_count = pools_jax.merge_with_annotation(spx[0], label[0], cap, settings.num_cls)
  spx = spx.at[0].set(jnp.minimum(merged, cap))
  counts = counts.at[0].set(merged_count)
  pools = jax.vmap(lambda s, c: pools_jax.mode_pools(s, c, cap, settings.num_cls))(spx, label)
  spx_valid = jnp.arange(cap)[None, :] < jnp.minimum(counts, cap)[:, None]
  return spx, jnp.where(spx_valid, pools, 0), spx_valid, counts > cap


def complete(batch: dict, settings: Settings) -> tuple[dict, jax.Array]:
  """A per-device batch of frames and labels made into the step's input.

  Args:
    batch: frames [B, T, H, W, 3] uint8, label [B, T, H, W] int32 and the other keys of
      `input_pipeline` (num_cls, cls_valid, index).
    settings: see `Settings`.

  Returns:
    (the batch with image [B, T, H, W, 3] float32 normalised, spx, pools and spx_valid added,
    as the host pipeline ships them; the fraction of frames over capacity, a float32 scalar).
  """
  spx, pools, spx_valid, overflow = jax.vmap(lambda f, lab: sequence_superpixels(f, lab, settings))(
    batch['frames'], batch['label']
  )
  mean = jnp.asarray(settings.mean, jnp.float32)
  std = jnp.asarray(settings.std, jnp.float32)
  image = (batch['frames'].astype(jnp.float32) / 255.0 - mean) / std
  completed = dict(batch, image=image, spx=spx, pools=pools, spx_valid=spx_valid)
  return completed, jnp.mean(overflow.astype(jnp.float32))


__all__ = ['Settings', 'complete', 'sequence_superpixels', 'settings']
