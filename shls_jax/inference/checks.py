"""Checks of what the propagation engine is given: frames, superpixels, first and later masks.

Each check raises ValueError with what is wrong and how to fix it, before any network call.
"""

from typing import Optional

import numpy as np

from shls_jax.io import masks as mask_io


def check_later_masks(later_masks, size, num_frames: Optional[int] = None) -> dict:
  """{t: [H, W] int64 ids} sorted by frame, checked against the frame size and count."""
  later = {}
  for t, mask in sorted((later_masks or {}).items()):
    mask = np.asarray(mask)
    if not isinstance(t, (int, np.integer)) or t < 1 or (num_frames and t >= num_frames):
      raise ValueError(f'later masks need frame indices 1..T - 1, got {t!r}')
    if mask.shape != tuple(size) or not np.issubdtype(mask.dtype, np.integer):
      raise ValueError(
        f'later mask of frame {t} must be [H, W] {tuple(size)} integer ids, got '
        f'{mask.shape} {mask.dtype}'
      )
    if mask.size and (mask.min() < 0 or mask.max() >= mask_io.VOID):
      raise ValueError(
        f'later mask of frame {t}: ids must lie in 0..{mask_io.VOID - 1}, found {mask.min()}..{mask.max()}'
      )
    later[int(t)] = mask.astype(np.int64)
  return later


def check_video(frames, spx, first_mask):
  """Validates `Propagator.run` inputs; returns them as numpy arrays."""
  frames, spx, first_mask = np.asarray(frames), np.asarray(spx), np.asarray(first_mask)
  if frames.ndim != 4 or frames.shape[-1] != 3:
    raise ValueError(f'frames must be [T, H, W, 3] RGB, got shape {frames.shape}')
  if spx.shape != frames.shape[:3]:
    raise ValueError(f'superpixels {spx.shape} do not match the frames {frames.shape[:3]}')
  if first_mask.shape != frames.shape[1:3]:
    raise ValueError(
      f'first mask {first_mask.shape} does not match the frame size {frames.shape[1:3]}'
    )
  if frames.shape[0] < 1:
    raise ValueError('the video has no frame')
  if not np.issubdtype(spx.dtype, np.integer) or not np.issubdtype(first_mask.dtype, np.integer):
    raise ValueError(
      f'superpixels and first mask must be integer, got {spx.dtype} and {first_mask.dtype}'
    )
  if first_mask.min() < 0 or first_mask.max() >= mask_io.VOID:
    raise ValueError(
      f'first-mask ids must lie in 0..{mask_io.VOID - 1} (map void {mask_io.VOID} to an id or '
      f'to 0 first), found {first_mask.min()}..{first_mask.max()}'
    )
  flat = spx.reshape(spx.shape[0], -1)
  top = flat.max(axis=1)
  counts = np.array([np.unique(f).size for f in flat])
  bad = np.flatnonzero((flat.min(axis=1) < 1) | (counts != top))
  if bad.size:
    raise ValueError(
      f'superpixels of frame {bad[0]} are not dense 1..N ({counts[bad[0]]} '
      f'distinct labels, max {top[bad[0]]}); relabel them first'
    )
  return frames, spx.astype(np.int32), first_mask.astype(np.int64)


def check_frame(frame, first_mask, slic_segments: int):
  """Validates a frame streamed without superpixels (the JAX SLIC computes them); returns
  (frame [H, W, 3] uint8, first mask as `check_video` does)."""
  if slic_segments < 1:
    raise ValueError(
      'a frame came without superpixels: give the engine slic_segments >= 1 for the JAX SLIC'
    )
  frame = np.asarray(frame)
  if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8:
    raise ValueError(f'frames must be [H, W, 3] uint8 RGB, got {frame.shape} {frame.dtype}')
  spx = np.ones(frame.shape[:2], np.int32)
  frames, _, mask = check_video(frame[None], spx[None], first_mask)
  return frames[0], mask
