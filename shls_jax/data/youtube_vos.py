"""YouTube-VOS (2018, 2019) semi-supervised splits on disk: frames, sparse annotations, meta.json.

Layout of a split folder (`<root>/valid`, `<root>/test`):
  JPEGImages/<video>/<frame>.jpg   the split's frames (every 5th frame of the 30 fps original)
  Annotations/<video>/<frame>.png  palette PNGs of object ids, only at frames where some object
                                   first appears; each holds (at least) the objects appearing there
  meta.json                        {"videos": {<video>: {"objects": {<id>: {"frames": [<frame>,
                                   ...]}}}}}: per object, the frames from its first appearance on
                                   for which a mask is to be submitted
The all-frames release (`<root>/valid_all_frames/JPEGImages/<video>/`) holds every frame of each
video under the same frame names; segmenting it and keeping the listed frames moves results by
several points against the 6 fps frames, so both are offered.

Object ids are kept as the annotations give them (they need not be contiguous: 1 and 3).
"""

import dataclasses
import json
from pathlib import Path

import numpy as np
from PIL import Image

from shls_jax.io import masks as mask_io

_IMAGE_DIR = 'JPEGImages'
_MASK_DIR = 'Annotations'
META_FILE = 'meta.json'


@dataclasses.dataclass(frozen=True)
class Video:
  """One YouTube-VOS video on disk.

  Attributes:
    name: the video's folder name.
    frames: sorted JPEG paths to segment, from the first frame where an object appears.
    output_frames: frame names whose masks are submitted (meta.json's, all objects together),
      sorted; all among the stems of `frames`.
    first_frames: object id -> name of the frame where it first appears (meta.json).
    annotations: frame name -> annotation PNG, for every first frame of an object.
  """

  name: str
  frames: tuple[Path, ...]
  output_frames: tuple[str, ...]
  first_frames: dict[int, str]
  annotations: dict[str, Path]

  @property
  def frame_names(self) -> list[str]:
    return [p.stem for p in self.frames]


def split_folder(root, split: str = 'valid') -> Path:
  """`<root>/<split>`, checked to hold JPEGImages/, Annotations/ and meta.json."""
  folder = Path(root) / split
  for needed in (_IMAGE_DIR, _MASK_DIR, META_FILE):
    if not (folder / needed).exists():
      raise FileNotFoundError(
        f'{folder / needed} is missing: --youtube_root must hold {split}/JPEGImages, '
        f'{split}/Annotations and {split}/meta.json'
      )
  return folder


def load_meta(folder: Path) -> dict[str, dict[int, list[str]]]:
  """video -> object id -> its listed frame names, from `<folder>/meta.json`."""
  path = folder / META_FILE
  try:
    meta = json.loads(path.read_text())
    return {
      video: {int(obj): [str(f) for f in info['frames']] for obj, info in entry['objects'].items()}
      for video, entry in meta['videos'].items()
    }
  except (json.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError) as error:
    raise ValueError(
      f'{path} is not a YouTube-VOS meta file ({{"videos": {{video: {{"objects": {{id: '
      f'{{"frames": [...]}}}}}}}}}}): {error!r}'
    ) from None


def select_videos(folder: Path, meta: dict, videos: list[str] | None = None) -> list[str]:
  """`videos` (checked to be in meta.json), else every video of meta.json, sorted."""
  if not videos:
    return sorted(meta)
  unknown = [v for v in videos if v not in meta]
  if unknown:
    raise FileNotFoundError(f'videos {unknown} are not in {folder / META_FILE}')
  return list(videos)


def load_video(folder: Path, name: str, objects: dict[int, list[str]], frames_dir=None) -> Video:
  """The video `name` of the split `folder`, with meta.json's `objects` of it.

  Args:
    folder: the split folder.
    name: the video.
    objects: object id -> listed frame names.
    frames_dir: folder holding `<name>/<frame>.jpg` to segment instead of the split's own
      JPEGImages (the all-frames release).

  Raises:
    FileNotFoundError: frames, listed frames or first-frame annotations are missing.
    ValueError: an object lists no frame.
  """
  images = Path(frames_dir or folder / _IMAGE_DIR) / name
  paths = sorted(images.glob('*.jpg'))
  if not paths:
    raise FileNotFoundError(f'no frames (*.jpg) in {images}')
  empty = [obj for obj, frames in objects.items() if not frames]
  if empty or not objects:
    raise ValueError(f'video {name}: objects {empty or "(none)"} list no frame in meta.json')
  first_frames = {obj: min(frames) for obj, frames in sorted(objects.items())}
  output = sorted({f for frames in objects.values() for f in frames})
  stems = {p.stem for p in paths}
  missing = [f for f in output if f not in stems]
  if missing:
    raise FileNotFoundError(f'video {name}: listed frames {missing[:5]} are not in {images}')
  annotations = {f: folder / _MASK_DIR / name / f'{f}.png' for f in set(first_frames.values())}
  absent = sorted(str(p) for p in annotations.values() if not p.is_file())
  if absent:
    raise FileNotFoundError(f'video {name}: first-frame annotations {absent} are missing')
  start = min(first_frames.values())
  return Video(
    name=name,
    frames=tuple(p for p in paths if p.stem >= start),
    output_frames=tuple(output),
    first_frames=first_frames,
    annotations=annotations,
  )


def read_annotation(path) -> tuple[np.ndarray, np.ndarray | None]:
  """([H, W] uint8 object ids, the PNG's palette [256, 3] uint8 or None) of an annotation."""
  try:
    with Image.open(path) as image:
      if image.mode not in ('P', 'L'):
        raise ValueError(f'annotation {path} is a {image.mode} image, not indexed or grayscale ids')
      palette = image.getpalette() if image.mode == 'P' else None
      ids = np.array(image, np.uint8)
  except OSError as error:
    raise ValueError(f'annotation {path} is not a readable PNG: {error}') from None
  if palette is not None:
    palette = np.zeros(768, np.uint8) if not palette else np.asarray(palette, np.uint8)
    palette = np.pad(palette, (0, 768 - palette.size))[:768].reshape(256, 3)
  return ids, palette


def given_masks(video: Video, size: tuple[int, int] | None = None) -> dict[int, np.ndarray]:
  """Frame index (in `video.frames`) -> [H, W] uint8 ids of the objects first appearing there
  (other ids of the PNG set to 0), resized nearest to `size` when given.

  Raises:
    ValueError: an object is absent from its first frame's annotation, or sizes differ.
  """
  index = {name: t for t, name in enumerate(video.frame_names)}
  masks, shape = {}, None
  for frame, path in sorted(video.annotations.items()):
    ids, _ = read_annotation(path)
    shape = shape or ids.shape
    if ids.shape != shape:
      raise ValueError(f'video {video.name}: annotations differ in size ({shape} and {ids.shape})')
    objects = [obj for obj, first in video.first_frames.items() if first == frame]
    absent = [obj for obj in objects if not np.any(ids == obj)]
    if absent:
      raise ValueError(f'video {video.name}: objects {absent} are not in their first frame {path}')
    mask = np.where(np.isin(ids, objects), ids, 0).astype(np.uint8)
    masks[index[frame]] = mask_io.resize_ids(mask, size) if size else mask
  return masks


def video_palette(video: Video) -> np.ndarray:
  """The palette of the video's first annotation, else the DAVIS one: [256, 3] uint8."""
  _, palette = read_annotation(video.annotations[min(video.annotations)])
  return mask_io.palette() if palette is None else palette
