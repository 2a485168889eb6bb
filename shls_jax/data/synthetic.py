"""Synthetic demo data: textured objects on textured backgrounds, as stills and as videos.

Objects and backgrounds come from different colour statistics (objects saturated and bright with
stripes or checks, backgrounds muted with smooth blotches), so that what training on the stills
learns transfers to the videos. Everything is deterministic for a seed.

* Stills, MSRA10K layout (`stills.list_msra10k`): `<out>/Imgs/<name>.jpg` with the saliency
  mask `<out>/Imgs/<name>.png` (binary 0/255, or soft: a blurred edge), `train.txt`, `val.txt`.
* Videos, DAVIS-2017 layout (`davis.list_sequences`): `JPEGImages/480p/<seq>/%05d.jpg`,
  `Annotations/480p/<seq>/%05d.png` (indexed PNG with the DAVIS palette, 0 = background,
  1..K = objects, drawn in id order so higher ids occlude lower ones), `ImageSets/2017/val.txt`.

  shls-synthetic --stills OUT1 --videos OUT2 [--seed 0]   (`shls_jax.tools.synthetic`)
"""

from pathlib import Path

import cv2
import numpy as np

from shls_jax.io import masks as mask_io

_JPEG_QUALITY = [cv2.IMWRITE_JPEG_QUALITY, 95]
_MAX_VIDEO_DRAWS = 100


def _hsv_colour(
  rng: np.random.Generator, saturation: tuple[float, float], value: tuple[float, float]
) -> np.ndarray:
  """[3] float32 RGB in [0, 1] of a random hue with saturation and value drawn in the ranges."""
  hsv = np.float32([[[rng.uniform(0, 360), rng.uniform(*saturation), rng.uniform(*value)]]])
  return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0]


def background_texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
  """[H, W, 3] float32 in [0, 1]: smooth blotches between two muted colours, with grain."""
  blotches = cv2.GaussianBlur(
    rng.random((height, width), np.float32), (0, 0), sigmaX=rng.uniform(6, 14)
  )
  blotches = (blotches - blotches.min()) / max(float(np.ptp(blotches)), 1e-6)
  low, high = (_hsv_colour(rng, (0.05, 0.35), (0.25, 0.7)) for _ in range(2))
  grain = rng.normal(0, 0.02, (height, width, 1)).astype(np.float32)
  return np.clip(low + blotches[..., None] * (high - low) + grain, 0, 1)


def object_texture(rng: np.random.Generator, size: int) -> np.ndarray:
  """[size, size, 3] float32 in [0, 1]: two saturated colours in stripes or checks."""
  rows, cols = np.mgrid[:size, :size].astype(np.float32)
  period = rng.uniform(4, 10)
  angle = rng.uniform(0, np.pi)
  along = np.cos(angle) * cols + np.sin(angle) * rows
  if rng.random() < 0.5:
    pattern = np.sin(2 * np.pi * along / period) > 0
  else:
    across = -np.sin(angle) * cols + np.cos(angle) * rows
    pattern = (np.floor(along / period) + np.floor(across / period)) % 2 == 0
  first = _hsv_colour(rng, (0.65, 1.0), (0.7, 1.0))
  second = _hsv_colour(rng, (0.65, 1.0), (0.5, 0.9))
  grain = rng.normal(0, 0.02, (size, size, 1)).astype(np.float32)
  return np.clip(np.where(pattern[..., None], first, second) + grain, 0, 1)


def blob_mask(rng: np.random.Generator, size: int) -> np.ndarray:
  """[size, size] bool random smooth blob filling most of the square (radius wobbles +-30%)."""
  centre = (size - 1) / 2
  rows, cols = np.mgrid[:size, :size].astype(np.float32) - centre
  theta = np.arctan2(rows, cols)
  radius = np.ones_like(theta)
  for k in (2, 3, 5):
    radius += rng.uniform(0, 0.3 / k * 2) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
  radius *= 0.95 * centre / radius.max()
  return np.hypot(rows, cols) <= radius


def _place(
  canvas: np.ndarray,
  ids: np.ndarray,
  texture: np.ndarray,
  mask: np.ndarray,
  matrix: np.ndarray,
  obj_id: int,
) -> None:
  """Draws a sprite over `canvas` and `ids` in place through a [2, 3] affine `matrix`."""
  height, width = ids.shape
  warped = cv2.warpAffine(texture, matrix, (width, height), flags=cv2.INTER_LINEAR)
  inside = (
    cv2.warpAffine(mask.astype(np.uint8), matrix, (width, height), flags=cv2.INTER_NEAREST) > 0
  )
  canvas[inside] = warped[inside]
  ids[inside] = obj_id


def _sprite_matrix(
  size: int, centre: tuple[float, float], scale: float, angle: float
) -> np.ndarray:
  """Affine map taking a size x size sprite's centre to `centre` (x, y), scaled and rotated."""
  matrix = cv2.getRotationMatrix2D(((size - 1) / 2, (size - 1) / 2), angle, scale)
  matrix[:, 2] += np.array(centre) - (size - 1) / 2
  return matrix


def _to_uint8(image: np.ndarray) -> np.ndarray:
  return np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)


def make_still(
  rng: np.random.Generator, height: int, width: int, soft: bool
) -> tuple[np.ndarray, np.ndarray]:
  """One still image and its saliency mask: (RGB uint8 [H, W, 3], uint8 [H, W] 0..255).

  One object, sometimes two, at random places; a soft mask has a blurred 0..255 edge.
  """
  canvas = background_texture(rng, height, width)
  ids = np.zeros((height, width), np.int32)
  for obj_id in range(1, 1 + (2 if rng.random() < 0.3 else 1)):
    size = int(rng.uniform(0.35, 0.7) * min(height, width))
    centre = (rng.uniform(0.3, 0.7) * width, rng.uniform(0.3, 0.7) * height)
    matrix = _sprite_matrix(size, centre, rng.uniform(0.8, 1.2), rng.uniform(-180, 180))
    _place(canvas, ids, object_texture(rng, size), blob_mask(rng, size), matrix, obj_id)
  mask = (ids > 0).astype(np.float32)
  if soft:
    mask = np.maximum(mask, cv2.GaussianBlur(mask, (0, 0), sigmaX=2.0))
  return _to_uint8(canvas), _to_uint8(mask)


def write_stills(
  out,
  num_images: int = 60,
  size: tuple[int, int] = (160, 200),
  seed: int = 0,
  val_fraction: float = 0.1,
) -> list[str]:
  """Writes a synthetic still-image set in the MSRA10K layout; returns the image names.

  Half of the masks (at random) are soft. `train.txt` and `val.txt` split the names.
  """
  if num_images < 2:
    raise ValueError(f'need at least 2 images (one per split), got {num_images}')
  rng = np.random.default_rng(seed)
  image_dir = Path(out) / 'Imgs'
  image_dir.mkdir(parents=True, exist_ok=True)
  names = [f'{i:05d}' for i in range(num_images)]
  for name in names:
    image, mask = make_still(rng, *size, soft=rng.random() < 0.5)
    cv2.imwrite(
      str(image_dir / f'{name}.jpg'), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), _JPEG_QUALITY
    )
    cv2.imwrite(str(image_dir / f'{name}.png'), mask)
  num_val = max(1, int(round(val_fraction * num_images)))
  (Path(out) / 'train.txt').write_text(''.join(f'{n}\n' for n in names[:-num_val]))
  (Path(out) / 'val.txt').write_text(''.join(f'{n}\n' for n in names[-num_val:]))
  return names


def make_video(
  rng: np.random.Generator, height: int, width: int, num_frames: int, num_objects: int
) -> tuple[np.ndarray, np.ndarray]:
  """Objects drifting smoothly over a slowly panning background.

  Each object moves with a constant velocity plus a slow sway, spins slowly and breathes in
  scale, and bounces off the frame's sides so that it stays mostly in view; object k + 1 is drawn
  over object k. Frame 0 shows every object.

  Returns:
    (RGB uint8 [T, H, W, 3], uint8 [T, H, W] ids with 0 = background).
  """
  margin = int(0.25 * max(height, width)) + 2
  background = background_texture(rng, height + 2 * margin, width + 2 * margin)
  pan = rng.uniform(-0.5, 0.5, size=2)
  sizes = [int(rng.uniform(0.35, 0.6) * min(height, width)) for _ in range(num_objects)]
  sprites = [(object_texture(rng, s), blob_mask(rng, s)) for s in sizes]
  start = np.stack(
    [rng.uniform(0.2, 0.8, num_objects) * width, rng.uniform(0.2, 0.8, num_objects) * height],
    axis=1,
  )
  velocity = rng.uniform(-2.5, 2.5, (num_objects, 2))
  sway, phase = rng.uniform(2, 6, (num_objects, 2)), rng.uniform(0, 2 * np.pi, (num_objects, 2))
  spin, angle0 = rng.uniform(-2, 2, num_objects), rng.uniform(-180, 180, num_objects)
  frames = np.zeros((num_frames, height, width, 3), np.uint8)
  masks = np.zeros((num_frames, height, width), np.uint8)
  for t in range(num_frames):
    offset = np.clip(np.round(margin + pan * t).astype(int), 0, 2 * margin)
    canvas = background[offset[1] : offset[1] + height, offset[0] : offset[0] + width].copy()
    ids = np.zeros((height, width), np.int32)
    position = start + velocity * t + sway * np.sin(0.15 * t + phase)
    # Reflecting at the sides keeps objects in view without abrupt jumps.
    bounds = np.array([width, height], np.float64)
    position = bounds - np.abs(bounds - np.mod(position, 2 * bounds))
    for k, ((texture, mask), size) in enumerate(zip(sprites, sizes)):
      scale = 1 + 0.1 * np.sin(0.1 * t + phase[k, 0])
      matrix = _sprite_matrix(size, tuple(position[k]), scale, angle0[k] + spin[k] * t)
      _place(canvas, ids, texture, mask, matrix, k + 1)
    frames[t] = _to_uint8(canvas)
    masks[t] = ids
  return frames, masks


def write_videos(
  out,
  num_videos: int = 3,
  num_frames: int = 12,
  num_objects: int = 2,
  size: tuple[int, int] = (120, 216),
  seed: int = 0,
) -> list[str]:
  """Writes synthetic videos in the DAVIS-2017 layout; returns the sequence names.

  Every sequence is listed in `ImageSets/2017/val.txt`. A sequence whose frame 0 hides an
  object completely is drawn again.
  """
  if num_videos < 1 or num_frames < 2 or num_objects < 1:
    raise ValueError(
      f'need >= 1 video, >= 2 frames and >= 1 object; got {num_videos}, {num_frames}, {num_objects}'
    )
  rng = np.random.default_rng(seed)
  out = Path(out)
  names = [f'synth{i:03d}' for i in range(num_videos)]
  for name in names:
    for _ in range(_MAX_VIDEO_DRAWS):
      frames, masks = make_video(rng, *size, num_frames, num_objects)
      if np.unique(masks[0]).size == num_objects + 1:
        break
    else:
      raise ValueError(f'{num_objects} objects do not fit visibly in a {size} frame')
    image_dir = out / 'JPEGImages' / '480p' / name
    image_dir.mkdir(parents=True, exist_ok=True)
    for t in range(num_frames):
      cv2.imwrite(
        str(image_dir / f'{t:05d}.jpg'), cv2.cvtColor(frames[t], cv2.COLOR_RGB2BGR), _JPEG_QUALITY
      )
      mask_io.write_mask(out / 'Annotations' / '480p' / name / f'{t:05d}.png', masks[t])
  split = out / 'ImageSets' / '2017' / 'val.txt'
  split.parent.mkdir(parents=True, exist_ok=True)
  split.write_text(''.join(f'{n}\n' for n in names))
  return names
