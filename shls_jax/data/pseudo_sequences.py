"""Pseudo-sequences: short training videos synthesised from one still image.

Frame 0 is the whole image resized; every later frame is a fresh augmentation of the
full-resolution image (colour jitter, random affine, rescale, crop). Objects cut from other
still images are pasted into every frame, each frame re-augmenting the object of the previous
one and placing it near its previous box. Each frame then gets SLIC superpixels and mode pools;
frame 0's superpixels are merged with its labels, as training expects.

Label conventions: [T, H, W] int32, 1 = background, 2..L = objects, and every label 1..L is
present in frame 0 (`num_cls` = L). An object keeps its label in every frame. When a later frame
loses an object (occluded by a pasted one, cropped or warped out of view, or its paste failed),
the label is simply absent from that frame; labels never shift. Pixels of a region that frame 0
does not show become background.

Longer than most modules (about 450 lines): the synthesis is one pipeline of small steps (warps,
pastes, crops, labels, superpixels) that only this module uses; splitting it would scatter one
recipe over files.
"""

import math
from typing import Callable, Sequence

import cv2
import numpy as np

from shls_jax import superpixels
from shls_jax.data import stills
from shls_jax.superpixels import pools as pools_lib

Source = tuple[np.ndarray, np.ndarray]  # (RGB uint8 [H, W, 3], soft mask float [H, W] in [0, 1])
Others = Callable[[np.random.Generator], Source] | Sequence[Source]

# Probability of cutting the next pasted object from the previous object's source image.
_REUSE_SOURCE = 1 / 3
_CROP_JITTER = 20


def color_jitter(
  image: np.ndarray,
  rng: np.random.Generator,
  brightness: float = 0.2,
  contrast: float = 0.2,
  saturation: float = 0.2,
  hue: float = 0.01,
) -> np.ndarray:
  """Random brightness, contrast, saturation and hue changes, applied in random order.

  Args:
    image: [H, W, 3] float32 RGB in [0, 1].
    rng: randomness.
    brightness, contrast, saturation: factors are drawn from U(1 - x, 1 + x).
    hue: shift drawn from U(-hue, hue), in turns of the colour wheel.

  Returns:
    [H, W, 3] float32 RGB in [0, 1].
  """
  image = image.astype(np.float32, copy=True)
  for op in rng.permutation(4):
    if op == 0:
      image = image * rng.uniform(1 - brightness, 1 + brightness)
    elif op == 1:
      factor = rng.uniform(1 - contrast, 1 + contrast)
      image = factor * image + (1 - factor) * _grey(image).mean()
    elif op == 2:
      factor = rng.uniform(1 - saturation, 1 + saturation)
      image = factor * image + (1 - factor) * _grey(image)[..., None]
    else:
      hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
      hsv[..., 0] = np.mod(hsv[..., 0] + 360.0 * rng.uniform(-hue, hue), 360.0)
      image = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    image = np.clip(image, 0.0, 1.0)
  return image


def _grey(image: np.ndarray) -> np.ndarray:
  return image @ np.array([0.2989, 0.587, 0.114], np.float32)


def random_affine(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
  """[2, 3] float64 affine map about the image centre for `cv2.warpAffine`.

  Each of rotation (+-30 deg), x-shear (+-15 deg), translation (+-15 px per axis) and scaling
  (0.8-1.2, independent per axis) is included with probability 0.5, composed in random order.
  """
  h, w = shape
  centre = np.array([[1, 0, (w - 1) / 2], [0, 1, (h - 1) / 2], [0, 0, 1]])
  uncentre = np.linalg.inv(centre)
  matrix = np.eye(3)
  for op in rng.permutation(4):
    if rng.random() >= 0.5:
      continue
    if op == 0:
      angle = np.deg2rad(rng.uniform(-30, 30))
      step = [[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]]
    elif op == 1:
      step = [[1, np.tan(np.deg2rad(rng.uniform(-15, 15))), 0], [0, 1, 0], [0, 0, 1]]
    elif op == 2:
      tx, ty = rng.integers(-15, 16, size=2)
      step = [[1, 0, tx], [0, 1, ty], [0, 0, 1]]
    else:
      sx, sy = rng.uniform(0.8, 1.2, size=2)
      step = [[sx, 0, 0], [0, sy, 0], [0, 0, 1]]
    matrix = centre @ np.asarray(step, np.float64) @ uncentre @ matrix
  return matrix[:2]


def _crop_start(lo: int, hi: int, extent: int, crop: int, rng: np.random.Generator) -> int:
  """Start of a `crop`-long window over [lo, hi) inside [0, extent), then jittered."""
  if hi - lo > crop:
    start = int(rng.integers(lo, hi - crop + 1))
  elif hi - lo == crop:
    start = lo
  else:
    start = int(rng.integers(max(0, hi - crop), min(lo, extent - crop) + 1))
  start = int(rng.integers(start - _CROP_JITTER, start + _CROP_JITTER + 1))
  return int(np.clip(start, 0, extent - crop))


def augment_frame(
  image: np.ndarray, label: np.ndarray, rng: np.random.Generator, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
  """One later frame of a pseudo-sequence from the full-resolution still image.

  Colour jitter, random affine (zero padding), rescale by U(0.8, 1.1) with each side at least the
  output size, and an output-size crop over the unpadded area with +-20 px jitter.

  Args:
    image: [h, w, 3] float32 RGB in [0, 1].
    label: [h, w] int32 labels >= 1.
    rng: randomness.
    size: (H, W) of the frame.

  Returns:
    ([H, W, 3] float32 image, [H, W] int32 labels; 0 marks the affine padding).
  """
  h, w = label.shape
  affine = random_affine((h, w), rng)
  image = cv2.warpAffine(
    color_jitter(image, rng),
    affine,
    (w, h),
    flags=cv2.INTER_LINEAR,
    borderMode=cv2.BORDER_CONSTANT,
    borderValue=0,
  )
  label = cv2.warpAffine(
    label, affine, (w, h), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0
  )
  scale = rng.uniform(0.8, 1.1)
  h, w = max(size[0], int(h * scale)), max(size[1], int(w * scale))
  image = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
  label = cv2.resize(label, (w, h), interpolation=cv2.INTER_NEAREST)
  rows, cols = np.nonzero(label.any(axis=1))[0], np.nonzero(label.any(axis=0))[0]
  if rows.size == 0:
    rows, cols = np.array([0, h - 1]), np.array([0, w - 1])
  top = _crop_start(rows[0], rows[-1] + 1, h, size[0], rng)
  left = _crop_start(cols[0], cols[-1] + 1, w, size[1], rng)
  return (
    image[top : top + size[0], left : left + size[1]],
    label[top : top + size[0], left : left + size[1]],
  )


def random_binarisation(soft: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """Binary object mask from a soft saliency map, as an unreliable saliency method would give.

  Keeps the confident pixels (above a threshold drawn from {0.5, ..., 1.0}) and the faint ones
  (non-zero, below one drawn from {0.1, ..., 0.5}); falls back to `soft > 0` when that keeps
  under 10% of it.

  Args:
    soft: [h, w] float saliency in [0, 1].

  Returns:
    [h, w] uint8 in {0, 1}.
  """
  high = soft > rng.integers(5, 11) / 10
  low = (soft > 0) & (soft < rng.integers(1, 6) / 10)
  binary = high | low
  if np.count_nonzero(binary) < 0.1 * np.count_nonzero(soft > 0):
    binary = soft > 0
  return binary.astype(np.uint8)


def cut_object(
  image: np.ndarray, soft: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray] | None:
  """A random object region of a still image: (float32 RGB crop, binarised mask crop) or None.

  The region is one of the still image's labels 2..L (label 1 holds the top-left corner, normally
  the background), cropped to its box; None when the image has no such region or the mask of
  the box binarises to nothing.
  """
  labels = stills.region_labels(soft)
  num = int(labels.max())
  if num < 2:
    return None
  rows, cols = np.nonzero(labels == rng.integers(2, num + 1))
  box = np.s_[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
  mask = random_binarisation(soft[box], rng)
  if not mask.any():
    return None
  return image[box].astype(np.float32) / 255.0, mask


def warp_object(
  rgb: np.ndarray, mask: np.ndarray, rng: np.random.Generator, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
  """Rescales an object (its shorter side to 0.1-0.6 of the frame's) and warps its perspective.

  The four corners move by up to a tenth of the object's size each; the output keeps the
  rescaled object's size. Returns (float32 [h, w, 3], uint8 [h, w] mask).
  """
  oh, ow = mask.shape
  axis = 0 if oh <= ow else 1
  side = int(
    np.clip(
      rng.integers(math.ceil(0.1 * size[axis]), math.ceil(0.6 * size[axis]) + 1),
      int(0.1 * size[axis]),
      int(0.6 * size[axis]),
    )
  )
  if axis == 0:
    new_h, new_w = side, int(side / oh * ow)
  else:
    new_h, new_w = int(side / ow * oh), side
  new_h, new_w = max(new_h, 1), max(new_w, 1)
  rgb = cv2.resize(rgb, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
  mask = cv2.resize(mask, (new_w, new_h), interpolation=cv2.INTER_NEAREST)
  corners = np.float32([[0, 0], [0, new_h - 1], [new_w - 1, new_h - 1], [new_w - 1, 0]])
  dx = rng.integers(-(new_w // 10), new_w // 10 + 1, size=4)
  dy = rng.integers(-(new_h // 10), new_h // 10 + 1, size=4)
  moved = corners + np.stack([dx, dy], axis=1).astype(np.float32)
  homography = cv2.getPerspectiveTransform(moved, corners)
  rgb = cv2.warpPerspective(rgb, homography, (new_w, new_h), flags=cv2.INTER_LINEAR)
  mask = cv2.warpPerspective(mask, homography, (new_w, new_h), flags=cv2.INTER_NEAREST)
  return rgb, mask


def paste_object(
  frame: np.ndarray,
  label: np.ndarray,
  rgb: np.ndarray,
  mask: np.ndarray,
  obj_label: int,
  rng: np.random.Generator,
  *,
  area: tuple[int, int, int, int] | None = None,
  max_occlusion: float = 0.5,
  attempts: int = 3,
) -> tuple[np.ndarray, np.ndarray, bool]:
  """Pastes an object at a random place, refusing places that hide too much of other objects.

  The object's top-left corner is drawn so that the object fits inside `area` where it can; the
  object is clipped at the frame's border. A place is accepted when the object keeps some
  pixels and every object already present (labels >= 2) keeps more than 1 - `max_occlusion` of
  its pixels.

  Args:
    frame: [H, W, 3] float32 image.
    label: [H, W] int32 labels (1 = background).
    rgb: [h, w, 3] float32 object image; mask: [h, w] its mask (non-zero = object).
    obj_label: label written on the object's pixels.
    rng: randomness.
    area: (rmin, rmax, cmin, cmax) region to place the object in; None for the whole frame.
    max_occlusion: largest fraction of an existing object that may be covered.
    attempts: places tried before giving up.

  Returns:
    (frame, label, pasted): new arrays when pasted, else the inputs unchanged and False.
  """
  height, width = label.shape
  rmin, rmax, cmin, cmax = area if area is not None else (0, height, 0, width)
  oh, ow = mask.shape
  before = np.bincount(label.ravel(), minlength=obj_label + 1)
  present = before[2:] > 0
  for _ in range(attempts):
    top = int(rng.integers(rmin, max(rmin, rmax - oh) + 1))
    left = int(rng.integers(cmin, max(cmin, cmax - ow) + 1))
    canvas = np.s_[top : min(height, top + oh), left : min(width, left + ow)]
    inside = mask[: canvas[0].stop - top, : canvas[1].stop - left] > 0
    new_frame, new_label = frame.copy(), label.copy()
    new_frame[canvas][inside] = rgb[: inside.shape[0], : inside.shape[1]][inside]
    new_label[canvas][inside] = obj_label
    after = np.bincount(new_label.ravel(), minlength=before.size)
    kept = after[2 : before.size][present] / before[2:][present]
    if after[obj_label] > 0 and np.all(kept > 1 - max_occlusion):
      return new_frame, new_label, True
  return frame, label, False


def _box_area(label: np.ndarray, obj_label: int, grow: float) -> tuple[int, int, int, int] | None:
  """Box of `obj_label` widened by grow/2 of the frame size per side, or None when absent."""
  rows, cols = np.nonzero(label == obj_label)
  if rows.size == 0:
    return None
  height, width = label.shape
  dr, dc = int(height * grow / 2), int(width * grow / 2)
  return (
    max(0, rows.min() - dr),
    min(height, rows.max() + 1 + dr),
    max(0, cols.min() - dc),
    min(width, cols.max() + 1 + dc),
  )


def _drawer(others: Others | None) -> Callable[[np.random.Generator], Source] | None:
  if others is None or callable(others):
    return others
  others = list(others)
  if not others:
    raise ValueError('`others` is an empty list: give at least one (image, mask) source')
  return lambda rng: others[int(rng.integers(len(others)))]


def _paste_objects(
  frames: list[np.ndarray],
  labels: list[np.ndarray],
  count: int,
  next_label: int,
  draw: Callable[[np.random.Generator], Source],
  rng: np.random.Generator,
  size: tuple[int, int],
) -> None:
  """Pastes up to `count` objects drawn from `draw` into every frame, in place.

  Pasted objects take labels `next_label`, `next_label` + 1, ... in the order they succeed.
  """
  source = None
  for _ in range(count):
    if source is None or rng.random() > _REUSE_SOURCE:
      image, soft = draw(rng)
      source = (np.asarray(image), np.asarray(soft, np.float32))
    cut = cut_object(*source, rng)
    if cut is None:
      continue
    rgb, mask = cut
    for t in range(len(frames)):
      rgb, mask = warp_object(rgb, mask, rng, size)
      area = None if t == 0 else _box_area(labels[t - 1], next_label, min(0.2 + t / 10, 1))
      frames[t], labels[t], pasted = paste_object(
        frames[t], labels[t], rgb, mask, next_label, rng, area=area
      )
      if t == 0 and not pasted:
        break
      rgb = color_jitter(rgb, rng)
    else:
      next_label += 1


def _relabel_by_first_frame(labels: np.ndarray) -> np.ndarray:
  """Renumbers [T, H, W] labels to the labels present in frame 0 (dense, order kept).

  Affine padding (0) and regions frame 0 does not show become background (1).
  """
  present = np.unique(labels[0])
  present = present[present > 0]
  table = np.ones(int(labels.max()) + 1, np.int32)
  table[present] = np.arange(1, present.size + 1, dtype=np.int32)
  return table[labels]


def rescale_still(
  image: np.ndarray, mask: np.ndarray, short_side: int
) -> tuple[np.ndarray, np.ndarray]:
  """A still image (area-averaged) and its mask (nearest: its values, hence its regions, are
  kept) resized, aspect kept, to `short_side` pixels on their shorter side; unchanged when
  `short_side` <= 0."""
  h, w = mask.shape
  if short_side <= 0 or min(h, w) == short_side:
    return image, mask
  scale = short_side / min(h, w)
  size = (max(1, round(w * scale)), max(1, round(h * scale)))
  interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
  return (
    cv2.resize(image, size, interpolation=interpolation),
    cv2.resize(np.asarray(mask, np.float32), size, interpolation=cv2.INTER_NEAREST),
  )


def make_pseudo_sequence(
  image: np.ndarray,
  mask: np.ndarray,
  rng: np.random.Generator,
  *,
  length: int = 3,
  size: tuple[int, int] = (256, 256),
  others: Others | None = None,
  max_labels: int = 4,
  n_segments: int = 300,
  compactness: float = 20.0,
  sigma: float = 1.0,
  with_superpixels: bool = True,
) -> dict:
  """A training pseudo-sequence from one still image and its saliency mask.

  With L labels in the still image (`stills.region_labels`), randint(max(0, 2 - L), max_labels -
  L) objects cut from `others` are pasted (none when L >= max_labels; such an image keeps all its
  regions, so `num_cls` may then exceed `max_labels`). A paste that fails in frame 0 drops the
  object.

  Args:
    image: [h, w, 3] uint8 RGB still image.
    mask: [h, w] float soft saliency in [0, 1] (or binary).
    rng: randomness; the same generator state gives the same sequence.
    length: number of frames T.
    size: (H, W) of the frames.
    others: sources of pasted objects, a list of (image, mask) pairs or a function of the
      generator returning one; None pastes nothing.
    max_labels: most labels (background included) that pasting aims for.
    n_segments, compactness, sigma: SLIC settings.
    with_superpixels: False leaves the superpixels to the training step (`data.step_inputs`): the
      result then holds image, label and num_cls only.

  Returns:
    dict with image [T, H, W, 3] uint8; spx [T, H, W] int32 dense 1..N_t (frame 0 merged with its
    labels); label [T, H, W] int32 1..L (1 = background); pools: list of T [N_t] int32 (mode
    class of each superpixel); num_spx [T] int32; num_cls int (L).
  """
  image = np.asarray(image)
  mask = np.asarray(mask)
  if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
    raise ValueError(f'image must be [H, W, 3] uint8, got {image.dtype} {image.shape}')
  if mask.shape != image.shape[:2]:
    raise ValueError(f'mask {mask.shape} and image {image.shape[:2]} differ in size')
  if length < 2:
    raise ValueError(f'a pseudo-sequence needs at least 2 frames, got length={length}')
  height, width = size
  still = image.astype(np.float32) / 255.0
  label = stills.region_labels(mask)
  frames = [cv2.resize(still, (width, height), interpolation=cv2.INTER_LINEAR)]
  labels = [cv2.resize(label, (width, height), interpolation=cv2.INTER_NEAREST)]
  for _ in range(1, length):
    frame, frame_label = augment_frame(still, label, rng, size)
    frames.append(frame)
    labels.append(frame_label)
  num_regions = int(label.max())
  draw = _drawer(others)
  if draw is not None and num_regions < max_labels:
    count = int(rng.integers(max(0, 2 - num_regions), max_labels - num_regions + 1))
    _paste_objects(frames, labels, count, num_regions + 1, draw, rng, size)

  frames = np.round(np.stack(frames) * 255.0).astype(np.uint8)
  labels = _relabel_by_first_frame(np.stack(labels))
  if not with_superpixels:
    return {'image': frames, 'label': labels, 'num_cls': int(labels[0].max())}
  spx = np.stack(
    [
      superpixels.compute(f, 'slic', n_segments=n_segments, compactness=compactness, sigma=sigma)
      for f in frames
    ]
  )
  spx[0] = pools_lib.merge_with_annotation(spx[0], labels[0])
  pools = [pools_lib.mode_pools(s, lab) for s, lab in zip(spx, labels)]
  return {
    'image': frames,
    'spx': spx.astype(np.int32),
    'label': labels,
    'pools': pools,
    'num_spx': np.array([p.size for p in pools], np.int32),
    'num_cls': int(labels[0].max()),
  }
