"""Per-object ROI crops: the feature-modulator and decoder inputs of one object at one frame.

Every object c is refined inside its current ROI. Its inputs come from three frames: the first
frame (features, ground-truth mask channel, first ROI), the previous frame (features, logits
channel, ROI, attention map) and the current frame (features, ROI, attention map). Full-resolution
crops are resized to the working size (the current ROI size in exact mode) and zero-padded to a
multiple of 4; the L4 features are sampled with RoIAlign on the unpadded ROIs, straight to a
quarter of the padded size.

Conventions: boxes are [rmin, rmax, cmin, cmax] with exclusive max, in full-resolution pixels;
maps are NHWC-style [H, W, C]; L1 features have 67 channels, L4 features 259 channels at a quarter
of the resolution (PyTorch conv arithmetic, so not exactly H/4 for odd sizes).
"""

from typing import NamedTuple, Optional, Sequence, Tuple

import jax.numpy as jnp

from shls_jax.crops import resample

# The decoder's 4x downsampling needs crops whose sides are multiples of 4.
MULTIPLE = 4
L4_SCALE = 1.0 / MULTIPLE
# Background logit added outside an object's ROI so that the object's probability there is 0.
OUTSIDE_ROI_BACKGROUND = 1e7

Box = Tuple[int, int, int, int]


class ObjectInputs(NamedTuple):
  """Inputs of the feature modulator and the decoder for one object; hp, wp multiples of 4.

  Attributes:
    attention: [2, hp, wp, 4] float, attention maps [previous resized, current], padded.
    l1: [2, hp, wp, 67] float, L1 crops [previous resized, current], padded.
    l4: [2, hp/4, wp/4, 259] float, RoIAlign of L4 on the previous and current unpadded ROIs.
    decoder_l1: [hp, wp, 69] float, [first mask (nearest), previous logits, first L1 crop], padded.
    first_l4: [hp/4, wp/4, 259] float, RoIAlign of the first frame's L4 on the first ROI.
    decoder_attention: [hp, wp, 4] float, the current attention map, padded.
    pads: ((top, bottom), (left, right)) zero padding that `paste_back` removes.
  """
  attention: jnp.ndarray
  l1: jnp.ndarray
  l4: jnp.ndarray
  decoder_l1: jnp.ndarray
  first_l4: jnp.ndarray
  decoder_attention: jnp.ndarray
  pads: resample.Pads


def check_box(box: Sequence[int], frame_hw: Sequence[int], name: str = "box") -> Box:
  """Returns box as four Python ints, or raises ValueError if it is empty or leaves the frame."""
  if len(box) != 4:
    raise ValueError(f"{name} must be [rmin, rmax, cmin, cmax], got {list(box)}")
  rmin, rmax, cmin, cmax = (int(v) for v in box)
  height, width = frame_hw
  if not (0 <= rmin < rmax <= height and 0 <= cmin < cmax <= width):
    raise ValueError(f"{name} {[rmin, rmax, cmin, cmax]} is empty or outside the "
                     f"{height}x{width} frame")
  return rmin, rmax, cmin, cmax


def box_size(box: Sequence[int]) -> Tuple[int, int]:
  """(height, width) of a box [rmin, rmax, cmin, cmax]."""
  return int(box[1]) - int(box[0]), int(box[3]) - int(box[2])


def crop(x, box: Box) -> jnp.ndarray:
  """x [H, W, C] restricted to the box: [rmax - rmin, cmax - cmin, C]."""
  rmin, rmax, cmin, cmax = box
  return jnp.asarray(x)[rmin:rmax, cmin:cmax]


def _fit(x, size: Tuple[int, int], resize) -> jnp.ndarray:
  """x [h, w, C] resized to size, untouched when it already has that size."""
  return x if tuple(x.shape[:2]) == tuple(size) else resize(x, size)


def _check_map(x, frame_hw, channels: Optional[int], name: str):
  expected = (*frame_hw, channels) if channels else tuple(frame_hw)
  if tuple(x.shape) != expected:
    raise ValueError(f"{name} has shape {tuple(x.shape)}, expected {expected}")


def object_inputs(*, first_l1, first_l4, first_mask, first_box: Sequence[int],
                  prev_l1, prev_l4, prev_logits, prev_box: Sequence[int], prev_attention,
                  cur_l1, cur_l4, cur_box: Sequence[int], cur_attention,
                  size: Optional[Tuple[int, int]] = None) -> ObjectInputs:
  """Crops, resizes and pads the inputs of one object.

  Args:
    first_l1, prev_l1, cur_l1: [H, W, 67] L1 features of the first, previous and current frames.
    first_l4, prev_l4, cur_l4: [h4, w4, 259] L4 features of those frames.
    first_mask: [H, W] float, the object's channel of the first frame's one-hot labels (0/1).
    first_box, prev_box, cur_box: the object's ROIs [rmin, rmax, cmin, cmax] at those frames.
    prev_logits: [H, W] float, the object's channel of the previous frame's logits (the one-hot
      ground truth when the previous frame is the first one).
    prev_attention: [h', w', 4] attention map of the previous ROI.
    cur_attention: [h, w, 4] attention map of the current ROI.
    size: working size (h, w) of the crops before padding; default the current ROI size, which is
      what the reference computes. Another size resamples the current crops too.

  Returns:
    ObjectInputs at the working size padded to multiples of 4.
  """
  frame_hw = tuple(first_l1.shape[:2])
  first_box = check_box(first_box, frame_hw, "first_box")
  prev_box = check_box(prev_box, frame_hw, "prev_box")
  cur_box = check_box(cur_box, frame_hw, "cur_box")
  for name, x in [("prev_l1", prev_l1), ("cur_l1", cur_l1)]:
    _check_map(x, frame_hw, first_l1.shape[2], name)
  for name, x in [("first_mask", first_mask), ("prev_logits", prev_logits)]:
    _check_map(x, frame_hw, None, name)
  if size is None:
    size = box_size(cur_box)
  if tuple(cur_attention.shape[:2]) != box_size(cur_box):
    raise ValueError(f"cur_attention has shape {tuple(cur_attention.shape)}, expected the "
                     f"current ROI size {box_size(cur_box)} x 4")
  if tuple(prev_attention.shape[:2]) != box_size(prev_box):
    raise ValueError(f"prev_attention has shape {tuple(prev_attention.shape)}, expected the "
                     f"previous ROI size {box_size(prev_box)} x 4")

  bilinear = lambda x, box: _fit(crop(x, box), size, resample.resize_bilinear)
  attention = jnp.stack([_fit(jnp.asarray(prev_attention), size, resample.resize_bilinear),
                         _fit(jnp.asarray(cur_attention), size, resample.resize_bilinear)])
  l1 = jnp.stack([bilinear(prev_l1, prev_box), bilinear(cur_l1, cur_box)])
  decoder_l1 = jnp.concatenate([
      _fit(crop(jnp.asarray(first_mask)[..., None], first_box), size, resample.resize_nearest),
      bilinear(jnp.asarray(prev_logits)[..., None], prev_box),
      bilinear(first_l1, first_box)], axis=-1)

  attention, pads = resample.pad_to_multiple(attention, MULTIPLE)
  l1, _ = resample.pad_to_multiple(l1, MULTIPLE)
  decoder_l1, _ = resample.pad_to_multiple(decoder_l1, MULTIPLE)
  out_hw = (l1.shape[1] // MULTIPLE, l1.shape[2] // MULTIPLE)
  roi = lambda x, box: resample.roi_align(x, box, out_hw, L4_SCALE)
  return ObjectInputs(
      attention=attention,
      l1=l1,
      l4=jnp.stack([roi(prev_l4, prev_box), roi(cur_l4, cur_box)]),
      decoder_l1=decoder_l1,
      first_l4=roi(first_l4, first_box),
      decoder_attention=attention[1],
      pads=pads)


def paste_back(logits, pads: resample.Pads, box: Sequence[int],
               frame_hw: Sequence[int]) -> jnp.ndarray:
  """Places an object's padded decoder output into the frame.

  Args:
    logits: [hp, wp, 2] float decoder output (channel 0 background, 1 object) of an exact-mode
      crop, i.e. at the current ROI size once `pads` are removed.
    pads: the pads of its `ObjectInputs`.
    box: the current ROI [rmin, rmax, cmin, cmax].
    frame_hw: (H, W) of the frame.

  Returns:
    [H, W, 2] frame logits: the unpadded output inside the ROI; outside it 0, with
    OUTSIDE_ROI_BACKGROUND added to the background channel.
  """
  height, width = frame_hw
  rmin, rmax, cmin, cmax = check_box(box, frame_hw)
  inner = resample.unpad(jnp.asarray(logits), pads)
  if tuple(inner.shape[:2]) != box_size(box):
    raise ValueError(f"unpadded logits have shape {tuple(inner.shape)}, expected the ROI size "
                     f"{box_size(box)}")
  placed = jnp.pad(inner, ((rmin, height - rmax), (cmin, width - cmax), (0, 0)))
  rows = jnp.arange(height)[:, None]
  cols = jnp.arange(width)[None, :]
  outside = (rows < rmin) | (rows >= rmax) | (cols < cmin) | (cols >= cmax)
  offset = jnp.where(outside, OUTSIDE_ROI_BACKGROUND, 0.0).astype(placed.dtype)
  return placed.at[..., 0].add(offset)
