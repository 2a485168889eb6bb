"""Static-shape object crops with traced boxes: fast mode's and training's decoder inputs.

Exact mode crops every ROI at its own size, so the decoder sees a new shape almost every frame.
Two static-shape layouts are built here, with every box a traced value:

  Resampled crops (`object_inputs`, `paste`; training): every crop is resampled from its box to
  one static size (h, w), multiples of 4: bilinear sampling over the box follows
  `align_corners=False` resizing of the box's crop (`sample_bilinear`), the first-frame mask uses
  PyTorch 'nearest' over the box (`sample_nearest`), L4 crops use RoIAlign on the box straight to
  (h/4, w/4), and the decoder output is resampled back onto the box's pixels (`paste`). The
  decoder sees the ROI at a different scale than exact mode.

  Canvases (`canvas_inputs`, `paste_canvas`; inference fast mode): exact mode's inputs at their
  native size, i.e. the current ROI size (h, w) padded to multiples of 4 (hp, wp), computed with
  traced sizes and placed at the top-left of a static zero canvas (ch, cw) >= (hp, wp), a
  multiple of 4 (`canvas_size` picks it from a few buckets); L4 crops are RoIAlign to the traced
  (hp/4, wp/4) at the top-left of a (ch/4, cw/4) canvas. Inside [0, hp) x [0, wp) the inputs are
  exact mode's up to float rounding; the decoder's convolutions see zeros instead of their own
  padding only beyond it, so its output deviates from exact mode near the bottom/right edges.
  A large ROI may instead be decoded at a smaller traced size (h', w') (`decode_extents`): the
  inputs are then exact mode's for an ROI of that size, and the output is resized back onto the
  box, as training's resampled crops do.

Nothing recompiles when the boxes move (for canvases: as long as the bucket stays).

Conventions: maps are [H, W, C]; boxes are int32 [4] arrays [rmin, rmax, cmin, cmax] with
exclusive max, in full-resolution pixels, non-empty and inside the frame.
"""

from typing import Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from shls_jax.crops import object_crops, resample
from shls_jax.crops.object_crops import CropSource


def _resize_axis(start, in_extent, out_extent, offset, count: int):
  """One axis of a half-pixel (align_corners=False) resize of the frame positions
  [start, start + in_extent) to out_extent samples written at output positions
  [offset, offset + out_extent) of `count`; all but `count` may be traced.

  Returns:
    Per output position: the absolute frame indices (lo, hi), the weight of hi, and whether
    the position lies in the written range (elsewhere the indices are clamped).
  """
  dst = jnp.arange(count) - offset
  scale = jnp.asarray(in_extent, jnp.float32) / jnp.asarray(out_extent, jnp.float32)
  src = jnp.maximum((dst.astype(jnp.float32) + 0.5) * scale - 0.5, 0.0)
  lo = jnp.clip(jnp.floor(src).astype(jnp.int32), 0, in_extent - 1)
  weight = jnp.clip(src - lo.astype(jnp.float32), 0.0, 1.0)
  hi = jnp.where(lo < in_extent - 1, lo + 1, lo)
  inside = (dst >= 0) & (dst < out_extent)
  return start + lo, start + hi, weight, inside


def _nearest_axis(start, in_extent, out_extent, offset, count: int):
  """As `_resize_axis` for PyTorch 'nearest' (src = floor(dst * in / out)): (indices, inside)."""
  dst = jnp.arange(count) - offset
  scale = jnp.asarray(in_extent, jnp.float32) / jnp.asarray(out_extent, jnp.float32)
  src = jnp.floor(dst.astype(jnp.float32) * scale).astype(jnp.int32)
  return start + jnp.clip(src, 0, in_extent - 1), (dst >= 0) & (dst < out_extent)


def _interpolate(x, lo, hi, weight, axis: int):
  shape = [1] * x.ndim
  shape[axis] = -1
  weight = weight.reshape(shape).astype(x.dtype)
  return jnp.take(x, lo, axis=axis) * (1 - weight) + jnp.take(x, hi, axis=axis) * weight


def _bilinear(x, box, out_hw, offset, count):
  """x [H, W, C] over box resized bilinearly to out_hw, placed at offset in a zero [*count, C]
  (interpolating along W first, then H, as PyTorch does)."""
  r_lo, r_hi, r_w, r_in = _resize_axis(box[0], box[1] - box[0], out_hw[0], offset[0], count[0])
  c_lo, c_hi, c_w, c_in = _resize_axis(box[2], box[3] - box[2], out_hw[1], offset[1], count[1])
  out = _interpolate(_interpolate(x, c_lo, c_hi, c_w, 1), r_lo, r_hi, r_w, 0)
  return jnp.where((r_in[:, None] & c_in[None, :])[..., None], out, 0.0)


def _nearest(x, box, out_hw, offset, count):
  """As `_bilinear` with PyTorch 'nearest'."""
  rows, r_in = _nearest_axis(box[0], box[1] - box[0], out_hw[0], offset[0], count[0])
  cols, c_in = _nearest_axis(box[2], box[3] - box[2], out_hw[1], offset[1], count[1])
  out = jnp.take(jnp.take(x, cols, axis=1), rows, axis=0)
  return jnp.where((r_in[:, None] & c_in[None, :])[..., None], out, jnp.zeros((), x.dtype))


def sample_bilinear(x, box, size: Tuple[int, int]) -> jax.Array:
  """x [H, W, C] over box, resized bilinearly (align_corners=False) to [h, w, C]."""
  return _bilinear(x, box, size, (0, 0), size)


def sample_nearest(x, box, size: Tuple[int, int]) -> jax.Array:
  """x [H, W, C] over box, resized with PyTorch 'nearest' (floor(dst * in / out)) to [h, w, C]."""
  return _nearest(x, box, size, (0, 0), size)


def _inverse_axis(start, extent, crop, frame: int):
  """Per frame position: (lo, hi, weight) into a crop of `crop` samples (may be traced) that
  covers [start, start + extent), as a half-pixel resize of the crop back to `extent`; positions
  outside the box get clamped indices (masked by the caller). crop == extent is the identity."""
  scale = jnp.asarray(crop, jnp.float32) / extent.astype(jnp.float32)
  rel = (jnp.arange(frame) - start).astype(jnp.float32)
  src = jnp.maximum((rel + 0.5) * scale - 0.5, 0.0)
  lo = jnp.clip(jnp.floor(src).astype(jnp.int32), 0, crop - 1)
  weight = jnp.clip(src - lo.astype(jnp.float32), 0.0, 1.0)
  hi = jnp.minimum(lo + 1, crop - 1)
  return lo, hi, weight


def _outside_roi(placed, box, frame_hw: Tuple[int, int]) -> jax.Array:
  """placed [H, W, 2] kept inside the box; outside it 0, with
  `object_crops.OUTSIDE_ROI_BACKGROUND` on the background channel (as exact mode's
  `object_crops.paste_back`)."""
  rows, cols = jnp.arange(frame_hw[0])[:, None], jnp.arange(frame_hw[1])[None, :]
  inside = (rows >= box[0]) & (rows < box[1]) & (cols >= box[2]) & (cols < box[3])
  placed = jnp.where(inside[..., None], placed, 0.0)
  return placed.at[..., 0].add(
    jnp.where(inside, 0.0, object_crops.OUTSIDE_ROI_BACKGROUND).astype(placed.dtype)
  )


def paste(logits, box, frame_hw: Tuple[int, int]) -> jax.Array:
  """Resamples a crop's decoder output [h, w, 2] onto its box in the frame.

  Returns:
    [H, W, 2]: inside the box the bilinear resize of logits to the box size; outside it as
    `_outside_roi`.
  """
  height, width = frame_hw
  crop_h, crop_w = logits.shape[:2]
  r_lo, r_hi, r_w = _inverse_axis(box[0], box[1] - box[0], crop_h, height)
  c_lo, c_hi, c_w = _inverse_axis(box[2], box[3] - box[2], crop_w, width)
  placed = _interpolate(_interpolate(logits, c_lo, c_hi, c_w, 1), r_lo, r_hi, r_w, 0)
  return _outside_roi(placed, box, frame_hw)


def max_roi_grid(l4_hw: Tuple[int, int], size: Tuple[int, int]) -> Tuple[int, int]:
  """Static bound of RoIAlign's adaptive sample counts for any box of a frame whose L4 map is
  l4_hw, cropped to `size` (h/4, w/4 outputs)."""
  return tuple(
    resample.roi_grid(0, 4 * n, s // object_crops.MULTIPLE, object_crops.L4_SCALE)
    for n, s in zip(l4_hw, size)
  )


def object_inputs(
  first: CropSource, prev: CropSource, cur: CropSource, *, size: Tuple[int, int]
) -> object_crops.ObjectInputs:
  """Static-shape decoder inputs of one object resampled to `size` (traceable; vmap it over
  objects).

  Args:
    first, prev, cur: the first, previous and current frames' parts (`CropSource`), boxes int32
      [4], attention maps [H, W, 4] over the whole frame (each cropped here with its own box).
    size: static crop size (h, w), multiples of 4.
  """
  if size[0] % object_crops.MULTIPLE or size[1] % object_crops.MULTIPLE:
    raise ValueError(f'crop size {tuple(size)} must be multiples of {object_crops.MULTIPLE}')
  out4 = (size[0] // object_crops.MULTIPLE, size[1] // object_crops.MULTIPLE)
  grid = max_roi_grid(cur.l4.shape[:2], size)
  roi = lambda x, box: resample.roi_align(x, box, out4, object_crops.L4_SCALE, max_grid=grid)
  cur_att = sample_bilinear(cur.attention, cur.box, size)
  return object_crops.ObjectInputs(
    attention=jnp.stack([sample_bilinear(prev.attention, prev.box, size), cur_att]),
    l1=jnp.stack(
      [sample_bilinear(prev.l1, prev.box, size), sample_bilinear(cur.l1, cur.box, size)]
    ),
    l4=jnp.stack([roi(prev.l4, prev.box), roi(cur.l4, cur.box)]),
    decoder_l1=jnp.concatenate(
      [
        sample_nearest(first.plane[..., None], first.box, size),
        sample_bilinear(prev.plane[..., None], prev.box, size),
        sample_bilinear(first.l1, first.box, size),
      ],
      axis=-1,
    ),
    first_l4=roi(first.l4, first.box),
    decoder_attention=cur_att,
  )


# Canvases ------------------------------------------------------------------------------------


def decode_extents(boxes, max_canvas: int) -> np.ndarray:
  """Sizes (h', w') at which fast mode decodes each ROI (host side).

  Args:
    boxes: [K, 4] int ROIs.
    max_canvas: longest decoded side, a positive multiple of 4; 0 = no limit.

  Returns:
    [K, 2] int32: the box's (h, w), or for a box whose longest side exceeds max_canvas, (h, w)
    scaled by max_canvas / that side and rounded (aspect kept, longest side = max_canvas), so
    the padded size never exceeds max_canvas.
  """
  boxes = np.asarray(boxes).reshape(-1, 4)
  extents = np.stack([boxes[:, 1] - boxes[:, 0], boxes[:, 3] - boxes[:, 2]], axis=1)
  if max_canvas <= 0:
    return extents.astype(np.int32)
  longest = extents.max(axis=1, keepdims=True)
  scaled = np.clip(np.rint(extents * (max_canvas / longest)), 1, max_canvas)
  return np.where(longest > max_canvas, scaled, extents).astype(np.int32)


def canvas_size(extents, frame_hw: Tuple[int, int], sizes: Sequence[int]) -> Tuple[int, int]:
  """Static canvas (ch, cw) for a frame's decode sizes (host side).

  Args:
    extents: [K, 2] int decode sizes (h, w) of the frame's ROIs (`decode_extents`), K >= 1,
      each within the frame.
    frame_hw: (H, W) of the frame.
    sizes: canvas side buckets, multiples of 4.

  Returns:
    Per axis the smallest bucket holding every extent padded to a multiple of 4, capped at the
    frame's extent padded likewise (which holds any extent).
  """
  if any(s < object_crops.MULTIPLE or s % object_crops.MULTIPLE for s in sizes):
    raise ValueError(
      f'canvas sizes {tuple(sizes)} must be positive multiples of {object_crops.MULTIPLE}'
    )
  extents = np.asarray(extents).reshape(-1, 2)
  pad = lambda n: -(-int(n) // object_crops.MULTIPLE) * object_crops.MULTIPLE
  return tuple(
    min([s for s in sizes if s >= pad(extents[:, axis].max())] + [pad(frame)])
    for axis, frame in enumerate(frame_hw)
  )


def _placement(extent):
  """Exact mode's layout of a crop of a traced size (h, w) on one canvas: per axis (extent,
  padded extent, offset = top/left zero padding), traced."""
  placement = []
  for size in extent:
    padded = -(-size // object_crops.MULTIPLE) * object_crops.MULTIPLE
    placement.append((size, padded, (padded - size) // 2))
  return placement


def _box_extent(box):
  return box[1] - box[0], box[3] - box[2]


def canvas_inputs(
  first: CropSource, prev: CropSource, cur: CropSource, *, canvas: Tuple[int, int], extent=None
) -> object_crops.ObjectInputs:
  """Exact mode's decoder inputs of one object on a static canvas (traceable; vmap it over
  objects).

  With `extent` (h', w') the object is decoded as if its current ROI had that size: the decode
  size (h', w'), padded to (hp, wp), must fit the canvas (`canvas_size`). In [0, hp) x [0, wp)
  (L4: [0, hp/4) x [0, wp/4)) the result holds `object_crops.object_inputs` at the decode
  size: all crops resized bilinearly (first mask: nearest) from their own ROI size to (h', w')
  (the current crops, at their own size, unchanged), zero padding, and RoIAlign of the unpadded
  ROIs to (hp/4, wp/4); zeros elsewhere.

  Args:
    As `object_inputs`, with `canvas` a static (ch, cw), multiples of 4, instead of `size`, and
    extent: traced int decode size (h', w') (`decode_extents`); default the current ROI's size,
      i.e. exact mode's inputs.
  """
  if canvas[0] % object_crops.MULTIPLE or canvas[1] % object_crops.MULTIPLE:
    raise ValueError(f'canvas {tuple(canvas)} must be multiples of {object_crops.MULTIPLE}')
  extent = _box_extent(cur.box) if extent is None else (extent[0], extent[1])
  (height, padded_h, top), (width, padded_w, left) = _placement(extent)
  place = lambda resize, x, box: resize(x, box, (height, width), (top, left), canvas)
  canvas4 = (canvas[0] // object_crops.MULTIPLE, canvas[1] // object_crops.MULTIPLE)
  extent4 = (padded_h // object_crops.MULTIPLE, padded_w // object_crops.MULTIPLE)
  # Any output extent down to 1 sample: the previous and first ROIs may be far larger than the
  # current one.
  grid = max_roi_grid(cur.l4.shape[:2], (object_crops.MULTIPLE,) * 2)
  roi = lambda x, box: resample.roi_align(
    x, box, canvas4, object_crops.L4_SCALE, max_grid=grid, output_extent=extent4
  )
  cur_att = place(_bilinear, cur.attention, cur.box)
  return object_crops.ObjectInputs(
    attention=jnp.stack([place(_bilinear, prev.attention, prev.box), cur_att]),
    l1=jnp.stack([place(_bilinear, prev.l1, prev.box), place(_bilinear, cur.l1, cur.box)]),
    l4=jnp.stack([roi(prev.l4, prev.box), roi(cur.l4, cur.box)]),
    decoder_l1=jnp.concatenate(
      [
        place(_nearest, first.plane[..., None], first.box),
        place(_bilinear, prev.plane[..., None], prev.box),
        place(_bilinear, first.l1, first.box),
      ],
      axis=-1,
    ),
    first_l4=roi(first.l4, first.box),
    decoder_attention=cur_att,
  )


def paste_canvas(logits, box, frame_hw: Tuple[int, int], extent=None) -> jax.Array:
  """Places a canvas' decoder output [ch, cw, 2] (`canvas_inputs` layout) into the frame.

  Args:
    logits: [ch, cw, 2] decoder output.
    box: int32 [4] current ROI.
    frame_hw: (H, W).
    extent: the traced decode size given to `canvas_inputs`; default the box's size.

  Returns:
    [H, W, 2]: inside the box the output's (h', w') crop (without exact mode's padding) resized
    bilinearly (half-pixel) to the box, i.e. the output at the box's pixels when (h', w') is the
    box's size; outside it as `_outside_roi`.
  """
  extent = _box_extent(box) if extent is None else (extent[0], extent[1])
  (height, _, top), (width, _, left) = _placement(extent)
  r_lo, r_hi, r_w = _inverse_axis(box[0], box[1] - box[0], height, frame_hw[0])
  c_lo, c_hi, c_w = _inverse_axis(box[2], box[3] - box[2], width, frame_hw[1])
  placed = _interpolate(
    _interpolate(logits, c_lo + left, c_hi + left, c_w, 1), r_lo + top, r_hi + top, r_w, 0
  )
  return _outside_roi(placed, box, frame_hw)
