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
from shls_jax.ops import resize

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
  """

  attention: jnp.ndarray
  l1: jnp.ndarray
  l4: jnp.ndarray
  decoder_l1: jnp.ndarray
  first_l4: jnp.ndarray
  decoder_attention: jnp.ndarray


class CropSource(NamedTuple):
  """What one frame contributes to an object's decoder inputs.

  Attributes:
    l1: [H, W, 67] L1 features of the frame.
    l4: [h4, w4, 259] L4 features of the frame.
    box: the object's ROI [rmin, rmax, cmin, cmax] in that frame.
    plane: [H, W] float, the object's channel of the frame's labels: the one-hot ground truth for
      the first frame, the logits for the previous frame (the one-hot ground truth when that is
      the first frame); None for the current frame.
    attention: the object's attention map: [h, w, 4] over its ROI for `object_inputs`, [H, W, 4]
      over the whole frame for the static crops; None for the first frame.
  """

  l1: jnp.ndarray
  l4: jnp.ndarray
  box: Sequence[int]
  plane: Optional[jnp.ndarray] = None
  attention: Optional[jnp.ndarray] = None


def check_box(box: Sequence[int], frame_hw: Sequence[int], name: str = 'box') -> Box:
  """Returns box as four Python ints, or raises ValueError if it is empty or leaves the frame."""
  if len(box) != 4:
    raise ValueError(f'{name} must be [rmin, rmax, cmin, cmax], got {list(box)}')
  rmin, rmax, cmin, cmax = (int(v) for v in box)
  height, width = frame_hw
  if not (0 <= rmin < rmax <= height and 0 <= cmin < cmax <= width):
    raise ValueError(
      f'{name} {[rmin, rmax, cmin, cmax]} is empty or outside the {height}x{width} frame'
    )
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
    raise ValueError(f'{name} has shape {tuple(x.shape)}, expected {expected}')


def object_inputs(
  first: CropSource, prev: CropSource, cur: CropSource, size: Optional[Tuple[int, int]] = None
) -> Tuple[ObjectInputs, resample.Pads]:
  """Crops, resizes and pads the inputs of one object.

  Args:
    first, prev, cur: the first, previous and current frames' parts (see `CropSource`; the
      attention maps cover their ROIs).
    size: working size (h, w) of the crops before padding; default the current ROI size, which is
      what the reference computes. Another size resamples the current crops too.

  Returns:
    (ObjectInputs at the working size padded to multiples of 4, the pads ((top, bottom), (left,
    right)) that `paste_back` removes).
  """
  frame_hw = tuple(first.l1.shape[:2])
  first_box = check_box(first.box, frame_hw, 'first box')
  prev_box = check_box(prev.box, frame_hw, 'previous box')
  cur_box = check_box(cur.box, frame_hw, 'current box')
  for name, x in [('previous l1', prev.l1), ('current l1', cur.l1)]:
    _check_map(x, frame_hw, first.l1.shape[2], name)
  for name, x in [('first plane (mask)', first.plane), ('previous plane (logits)', prev.plane)]:
    _check_map(x, frame_hw, None, name)
  if size is None:
    size = box_size(cur_box)
  if tuple(cur.attention.shape[:2]) != box_size(cur_box):
    raise ValueError(
      f'current attention has shape {tuple(cur.attention.shape)}, expected the '
      f'current ROI size {box_size(cur_box)} x 4'
    )
  if tuple(prev.attention.shape[:2]) != box_size(prev_box):
    raise ValueError(
      f'previous attention has shape {tuple(prev.attention.shape)}, expected the '
      f'previous ROI size {box_size(prev_box)} x 4'
    )

  bilinear = lambda x, box: _fit(crop(x, box), size, resize.resize_bilinear)
  attention = jnp.stack(
    [
      _fit(jnp.asarray(prev.attention), size, resize.resize_bilinear),
      _fit(jnp.asarray(cur.attention), size, resize.resize_bilinear),
    ]
  )
  l1 = jnp.stack([bilinear(prev.l1, prev_box), bilinear(cur.l1, cur_box)])
  decoder_l1 = jnp.concatenate(
    [
      _fit(crop(jnp.asarray(first.plane)[..., None], first_box), size, resize.resize_nearest),
      bilinear(jnp.asarray(prev.plane)[..., None], prev_box),
      bilinear(first.l1, first_box),
    ],
    axis=-1,
  )

  attention, pads = resample.pad_to_multiple(attention, MULTIPLE)
  l1, _ = resample.pad_to_multiple(l1, MULTIPLE)
  decoder_l1, _ = resample.pad_to_multiple(decoder_l1, MULTIPLE)
  out_hw = (l1.shape[1] // MULTIPLE, l1.shape[2] // MULTIPLE)
  roi = lambda x, box: resample.roi_align(x, box, out_hw, L4_SCALE)
  return ObjectInputs(
    attention=attention,
    l1=l1,
    l4=jnp.stack([roi(prev.l4, prev_box), roi(cur.l4, cur_box)]),
    decoder_l1=decoder_l1,
    first_l4=roi(first.l4, first_box),
    decoder_attention=attention[1],
  ), pads


def paste_back(
  logits, pads: resample.Pads, box: Sequence[int], frame_hw: Sequence[int]
) -> jnp.ndarray:
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
    raise ValueError(
      f'unpadded logits have shape {tuple(inner.shape)}, expected the ROI size {box_size(box)}'
    )
  placed = jnp.pad(inner, ((rmin, height - rmax), (cmin, width - cmax), (0, 0)))
  rows = jnp.arange(height)[:, None]
  cols = jnp.arange(width)[None, :]
  outside = (rows < rmin) | (rows >= rmax) | (cols < cmin) | (cols >= cmax)
  offset = jnp.where(outside, OUTSIDE_ROI_BACKGROUND, 0.0).astype(placed.dtype)
  return placed.at[..., 0].add(offset)
