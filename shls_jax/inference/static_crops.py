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

Nothing recompiles when the boxes move (for canvases: as long as the bucket stays).

Conventions: maps are [H, W, C]; boxes are int32 [4] arrays [rmin, rmax, cmin, cmax] with
exclusive max, in full-resolution pixels, non-empty and inside the frame.
"""

from typing import NamedTuple, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from shls_jax import object_crops
from shls_jax import resample


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


def _inverse_axis(start, extent, crop: int, frame: int):
  """Per frame position: (lo, hi, weight) into a crop of `crop` samples that covers
  [start, start + extent), as a half-pixel resize of the crop back to `extent`; positions
  outside the box get clamped indices (masked by the caller)."""
  scale = jnp.float32(crop) / extent.astype(jnp.float32)
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
      jnp.where(inside, 0.0, object_crops.OUTSIDE_ROI_BACKGROUND).astype(placed.dtype))


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


class StaticInputs(NamedTuple):
  """Decoder inputs of one object at a static size (h, w); same layout as
  `object_crops.ObjectInputs` without pads: attention [2, h, w, 4], l1 [2, h, w, 67],
  l4 [2, h/4, w/4, 259], decoder_l1 [h, w, 69], first_l4 [h/4, w/4, 259],
  decoder_attention [h, w, 4]."""
  attention: jax.Array
  l1: jax.Array
  l4: jax.Array
  decoder_l1: jax.Array
  first_l4: jax.Array
  decoder_attention: jax.Array


def max_roi_grid(l4_hw: Tuple[int, int], size: Tuple[int, int]) -> Tuple[int, int]:
  """Static bound of RoIAlign's adaptive sample counts for any box of a frame whose L4 map is
  l4_hw, cropped to `size` (h/4, w/4 outputs)."""
  return tuple(resample.roi_grid(0, 4 * n, s // object_crops.MULTIPLE, object_crops.L4_SCALE)
               for n, s in zip(l4_hw, size))


def object_inputs(*, first_l1, first_l4, first_mask, first_box, prev_l1, prev_l4, prev_logits,
                  prev_box, prev_attention, cur_l1, cur_l4, cur_box, cur_attention,
                  size: Tuple[int, int]) -> StaticInputs:
  """Static-shape decoder inputs of one object resampled to `size` (traceable; vmap it over
  objects).

  Args:
    first_l1, prev_l1, cur_l1: [H, W, 67] L1 features of the first, previous, current frames.
    first_l4, prev_l4, cur_l4: [h4, w4, 259] their L4 features.
    first_mask: [H, W] float, the object's channel of the first frame's one-hot labels.
    prev_logits: [H, W] float, the object's channel of the previous frame's logits.
    prev_attention, cur_attention: [H, W, 4] full-frame attention maps of the object at the
      previous and current frames (each cropped here with its own frame's box).
    first_box, prev_box, cur_box: int32 [4] ROIs.
    size: static crop size (h, w), multiples of 4.
  """
  if size[0] % object_crops.MULTIPLE or size[1] % object_crops.MULTIPLE:
    raise ValueError(f"crop size {tuple(size)} must be multiples of {object_crops.MULTIPLE}")
  out4 = (size[0] // object_crops.MULTIPLE, size[1] // object_crops.MULTIPLE)
  grid = max_roi_grid(cur_l4.shape[:2], size)
  roi = lambda x, box: resample.roi_align(x, box, out4, object_crops.L4_SCALE, max_grid=grid)
  cur_att = sample_bilinear(cur_attention, cur_box, size)
  return StaticInputs(
      attention=jnp.stack([sample_bilinear(prev_attention, prev_box, size), cur_att]),
      l1=jnp.stack([sample_bilinear(prev_l1, prev_box, size),
                    sample_bilinear(cur_l1, cur_box, size)]),
      l4=jnp.stack([roi(prev_l4, prev_box), roi(cur_l4, cur_box)]),
      decoder_l1=jnp.concatenate([
          sample_nearest(first_mask[..., None], first_box, size),
          sample_bilinear(prev_logits[..., None], prev_box, size),
          sample_bilinear(first_l1, first_box, size)], axis=-1),
      first_l4=roi(first_l4, first_box),
      decoder_attention=cur_att)


# Canvases ------------------------------------------------------------------------------------


def canvas_size(boxes, frame_hw: Tuple[int, int], sizes: Sequence[int]) -> Tuple[int, int]:
  """Static canvas (ch, cw) for a frame's current ROIs (host side).

  Args:
    boxes: [K, 4] int ROIs, K >= 1.
    frame_hw: (H, W) of the frame.
    sizes: canvas side buckets, multiples of 4.

  Returns:
    Per axis the smallest bucket holding every box's extent padded to a multiple of 4, capped at
    the frame's extent padded likewise (which holds any box).
  """
  if any(s < object_crops.MULTIPLE or s % object_crops.MULTIPLE for s in sizes):
    raise ValueError(f"canvas sizes {tuple(sizes)} must be positive multiples of "
                     f"{object_crops.MULTIPLE}")
  boxes = np.asarray(boxes).reshape(-1, 4)
  pad = lambda n: -(-int(n) // object_crops.MULTIPLE) * object_crops.MULTIPLE
  canvas = []
  for extents, frame in ((boxes[:, 1] - boxes[:, 0], frame_hw[0]),
                         (boxes[:, 3] - boxes[:, 2], frame_hw[1])):
    need = pad(extents.max())
    canvas.append(min([s for s in sizes if s >= need] + [pad(frame)]))
  return tuple(canvas)


def _placement(box):
  """Exact mode's layout of a crop of box on one canvas: per axis (extent, padded extent,
  offset = top/left zero padding), traced."""
  placement = []
  for start, stop in ((box[0], box[1]), (box[2], box[3])):
    extent = stop - start
    padded = -(-extent // object_crops.MULTIPLE) * object_crops.MULTIPLE
    placement.append((extent, padded, (padded - extent) // 2))
  return placement


def roi_align_canvas(features, box, extent, canvas: Tuple[int, int],
                     max_grid: Tuple[int, int]) -> jax.Array:
  """torchvision `roi_align(aligned=False)` (adaptive sampling, L4 scale) of box to a traced
  output size, at the top-left of a zero canvas.

  Args:
    features: [h4, w4, C] L4 map.
    box: int32 [4] ROI in full-resolution pixels.
    extent: traced output size (oh, ow), each in 1..canvas.
    canvas: static (ch, cw).
    max_grid: static bound of the adaptive sample counts (`max_roi_grid`).

  Returns:
    [ch, cw, C]: RoIAlign to (oh, ow) in [0, oh) x [0, ow), zeros elsewhere.
  """
  dtype = features.dtype
  scale = jnp.asarray(object_crops.L4_SCALE, dtype)
  matrices, counts = [], []
  for start, stop, out, n, size, bound in zip(
      (box[0], box[2]), (box[1], box[3]), extent, canvas, features.shape[:2], max_grid):
    lo = start.astype(dtype) * scale
    roi = jnp.maximum(stop.astype(dtype) * scale - lo, 1.0)
    out = jnp.asarray(out, dtype)
    grid = jnp.ceil(roi / out).astype(jnp.int32)
    # resample's sampling matrix has a static bin count: its n bins over roi * n / out are the
    # out bins over roi (up to float rounding); the bins past out are dropped.
    # pylint: disable-next=protected-access
    matrix = resample._roi_axis_matrix(lo, roi * n / out, n, size, grid, bound)
    matrices.append(jnp.where((jnp.arange(n) < out)[:, None], matrix, 0.0))
    counts.append(grid)
  count = jnp.maximum(counts[0] * counts[1], 1).astype(dtype)
  return jnp.einsum("ph,hwc,qw->pqc", matrices[0], features, matrices[1],
                    precision="highest") / count


def canvas_inputs(*, first_l1, first_l4, first_mask, first_box, prev_l1, prev_l4, prev_logits,
                  prev_box, prev_attention, cur_l1, cur_l4, cur_box, cur_attention,
                  canvas: Tuple[int, int]) -> StaticInputs:
  """Exact mode's decoder inputs of one object on a static canvas (traceable; vmap it over
  objects).

  The current ROI (h, w), padded to (hp, wp), must fit the canvas (`canvas_size`). In
  [0, hp) x [0, wp) (L4: [0, hp/4) x [0, wp/4)) the result holds `object_crops.object_inputs`
  at the current ROI size: current crops as they are, previous/first crops resized bilinearly
  (first mask: nearest) from their own ROI size to (h, w), zero padding, and RoIAlign of the
  unpadded ROIs to (hp/4, wp/4); zeros elsewhere.

  Args:
    As `object_inputs`, with `canvas` a static (ch, cw), multiples of 4, instead of `size`.
  """
  if canvas[0] % object_crops.MULTIPLE or canvas[1] % object_crops.MULTIPLE:
    raise ValueError(f"canvas {tuple(canvas)} must be multiples of {object_crops.MULTIPLE}")
  (height, padded_h, top), (width, padded_w, left) = _placement(cur_box)
  place = lambda resize, x, box: resize(x, box, (height, width), (top, left), canvas)
  canvas4 = (canvas[0] // object_crops.MULTIPLE, canvas[1] // object_crops.MULTIPLE)
  extent4 = (padded_h // object_crops.MULTIPLE, padded_w // object_crops.MULTIPLE)
  # Any output extent down to 1 sample: the previous and first ROIs may be far larger than the
  # current one.
  grid = max_roi_grid(cur_l4.shape[:2], (object_crops.MULTIPLE,) * 2)
  roi = lambda x, box: roi_align_canvas(x, box, extent4, canvas4, grid)
  cur_att = place(_bilinear, cur_attention, cur_box)
  return StaticInputs(
      attention=jnp.stack([place(_bilinear, prev_attention, prev_box), cur_att]),
      l1=jnp.stack([place(_bilinear, prev_l1, prev_box), place(_bilinear, cur_l1, cur_box)]),
      l4=jnp.stack([roi(prev_l4, prev_box), roi(cur_l4, cur_box)]),
      decoder_l1=jnp.concatenate([
          place(_nearest, first_mask[..., None], first_box),
          place(_bilinear, prev_logits[..., None], prev_box),
          place(_bilinear, first_l1, first_box)], axis=-1),
      first_l4=roi(first_l4, first_box),
      decoder_attention=cur_att)


def paste_canvas(logits, box, frame_hw: Tuple[int, int]) -> jax.Array:
  """Places a canvas' decoder output [ch, cw, 2] (`canvas_inputs` layout) into the frame.

  Returns:
    [H, W, 2]: inside the box the output at the box's pixels (without exact mode's padding);
    outside it as `_outside_roi`.
  """
  (_, _, top), (_, _, left) = _placement(box)
  rows = jnp.clip(jnp.arange(frame_hw[0]) - box[0] + top, 0, logits.shape[0] - 1)
  cols = jnp.clip(jnp.arange(frame_hw[1]) - box[2] + left, 0, logits.shape[1] - 1)
  placed = jnp.take(jnp.take(logits, cols, axis=1), rows, axis=0)
  return _outside_roi(placed, box, frame_hw)
