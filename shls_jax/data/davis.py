"""DAVIS video object segmentation datasets: sequence listing, frames and annotation masks.

Two on-disk layouts are read:

* DAVIS-2017 style: `JPEGImages/<res>/<seq>/*.jpg`, `Annotations/<res>/<seq>/*.png` (indexed PNG,
  pixel value = object id, 0 = background, 255 = void) and `ImageSets/2017/<split>.txt` with one
  sequence name per line.
* DAVIS-2016 release: the same image folders, masks stored as 0/255, and
  `ImageSets/<res>/<split>.txt` listing "<image path> <annotation path>" lines.
"""

import dataclasses
from pathlib import Path

import numpy as np

from shls_jax.io import frames as frame_io
from shls_jax.io import masks as mask_io

_IMAGE_DIR = 'JPEGImages'
_MASK_DIR = 'Annotations'


def _check_root(root) -> Path:
  root = Path(root)
  if not root.is_dir():
    raise FileNotFoundError(f'DAVIS root {root} is not a directory')
  if not (root / _IMAGE_DIR).is_dir():
    raise FileNotFoundError(f'DAVIS root {root} has no {_IMAGE_DIR} folder: not a DAVIS dataset')
  return root


def _split_file(root: Path, split: str, resolution: str) -> Path:
  candidates = [
    root / 'ImageSets' / '2017' / f'{split}.txt',
    root / 'ImageSets' / resolution / f'{split}.txt',
  ]
  for path in candidates:
    if path.is_file():
      return path
  raise FileNotFoundError(
    f'split {split!r} not found under {root}: looked for '
    + ' and '.join(str(p) for p in candidates)
  )


def read_split_file(path: Path) -> list[str]:
  """Sequence names of a split file, in first-appearance order.

  A 2017 split file holds one name per line; a 2016 one holds "/JPEGImages/480p/<seq>/<frame>.jpg
  /Annotations/480p/<seq>/<frame>.png" lines, whose sequence is the image path's parent folder.
  """
  names = []
  for line in path.read_text().splitlines():
    fields = line.split()
    if not fields:
      continue
    name = Path(fields[0]).parent.name if len(fields) > 1 or '/' in fields[0] else fields[0]
    if name not in names:
      names.append(name)
  if not names:
    raise ValueError(f'split file {path} lists no sequences')
  return names


def list_sequences(root, split: str | None = None, resolution: str = '480p') -> list[str]:
  """Names of the sequences of `root`.

  Args:
    root: DAVIS root folder (holds `JPEGImages/`).
    split: None for every folder of `JPEGImages/<resolution>` (sorted), else a split name such as
      'val' or 'train', read from `ImageSets/2017/<split>.txt` or else
      `ImageSets/<resolution>/<split>.txt`.
    resolution: '480p' or 'Full-Resolution'.

  Returns:
    Sequence names; a split keeps the order of its file.
  """
  root = _check_root(root)
  image_root = root / _IMAGE_DIR / resolution
  if not image_root.is_dir():
    raise FileNotFoundError(f'resolution folder {image_root} does not exist')
  if split is None:
    return sorted(p.name for p in image_root.iterdir() if p.is_dir())
  return read_split_file(_split_file(root, split, resolution))


def select_sequences(
  root, names: list[str] | None = None, split: str = 'val', resolution: str = '480p'
) -> list[str]:
  """`names` checked to exist under `root`, or the sequences of `split` when `names` is empty.

  Raises:
    FileNotFoundError: a named sequence has no frame folder.
  """
  if not names:
    return list_sequences(root, split, resolution)
  available = set(list_sequences(root, None, resolution))
  missing = [s for s in names if s not in available]
  if missing:
    raise FileNotFoundError(
      f'sequence(s) {", ".join(missing)} not found under {root}/{_IMAGE_DIR}/{resolution}: '
      'choose others with --sequences'
    )
  return list(names)


def frame_paths(root, sequence: str, resolution: str = '480p') -> list[Path]:
  """Sorted JPEG frame paths of `sequence` (`JPEGImages/<resolution>/<sequence>/*.jpg`)."""
  root = _check_root(root)
  folder = root / _IMAGE_DIR / resolution / sequence
  if not folder.is_dir():
    raise FileNotFoundError(f'sequence {sequence!r} has no frame folder {folder}')
  paths = sorted(folder.glob('*.jpg'))
  if not paths:
    raise FileNotFoundError(f'frame folder {folder} holds no .jpg frames')
  return paths


@dataclasses.dataclass(frozen=True)
class Sequence:
  """One DAVIS sequence on disk.

  Attributes:
    name: sequence name (its folder name).
    frames: sorted JPEG paths, one per frame.
    annotations: per frame, the annotation PNG with the same stem, or None where the frame has no
      mask (semi-supervised test sets annotate only the first frame).
    object_ids: ids 1..K of the objects, K being the largest id of the first-frame mask.
    binary_255: True when the masks store the object as 255 (DAVIS-2016 release, 0/255 masks);
      255 then means the object, otherwise it means void.
  """

  name: str
  frames: tuple[Path, ...]
  annotations: tuple[Path | None, ...]
  object_ids: tuple[int, ...]
  binary_255: bool

  @property
  def frame_names(self) -> list[str]:
    """Frame stems ('00000', ...), the names that result masks take."""
    return [p.stem for p in self.frames]


def load_sequence(root, name: str, resolution: str = '480p') -> Sequence:
  """Finds the frames and annotations of sequence `name`; its first frame must have a mask."""
  frames = frame_paths(root, name, resolution)
  mask_dir = Path(root) / _MASK_DIR / resolution / name
  if not mask_dir.is_dir():
    raise FileNotFoundError(f'sequence {name!r} has no annotation folder {mask_dir}')
  annotations = tuple(
    p if p.is_file() else None for p in (mask_dir / f'{f.stem}.png' for f in frames)
  )
  if annotations[0] is None:
    raise FileNotFoundError(
      f'sequence {name!r}: first frame {frames[0].name} has no mask {mask_dir / frames[0].stem}.png'
    )
  frame_size, mask_size = frame_io.image_size(frames[0]), frame_io.image_size(annotations[0])
  if frame_size != mask_size:
    raise ValueError(
      f'sequence {name!r}: frame {frames[0]} is {frame_size} but its mask is {mask_size} (H, W)'
    )
  first = mask_io.read_indexed_png(annotations[0])
  present = np.unique(first)
  # A first frame holding only 0 and 255 is a 0/255 single-object mask: DAVIS-2017 first frames
  # always show their objects with ids 1..K.
  binary_255 = bool(present[-1] == mask_io.VOID and np.all(np.isin(present, (0, mask_io.VOID))))
  num_objects = 1 if binary_255 else int(present[present != mask_io.VOID].max(initial=0))
  return Sequence(name, tuple(frames), annotations, tuple(range(1, num_objects + 1)), binary_255)


def load_frames(sequence: Sequence, size: tuple[int, int] | None = None) -> np.ndarray:
  """All frames as RGB uint8 [T, H, W, 3]; `size` = (H, W) resizes bilinearly."""
  frames = [frame_io.read_frame(p, size) for p in sequence.frames]
  shapes = {f.shape for f in frames}
  if len(shapes) > 1:
    raise ValueError(f'sequence {sequence.name!r} mixes frame sizes {sorted(shapes)}')
  return np.stack(frames)


def load_masks(
  sequence: Sequence, indices=None, size: tuple[int, int] | None = None, single_object: bool = False
) -> np.ndarray:
  """Annotation masks as uint8 [T, H, W] (ids 0..K, 255 = void; see `masks.decode_mask`).

  Args:
    sequence: from `load_sequence`.
    indices: frame indices to load (default: every frame); each must have a mask.
    size: (H, W) to resize to (nearest neighbour); None keeps the frame size.
    single_object: merge all objects into object 1.

  Raises:
    FileNotFoundError: a requested frame has no annotation.
    ValueError: a mask's size differs from its frame's.
  """
  indices = range(len(sequence.frames)) if indices is None else indices
  masks = []
  for i in indices:
    path = sequence.annotations[i]
    if path is None:
      raise FileNotFoundError(
        f'sequence {sequence.name!r}: frame {sequence.frames[i].name} has no annotation mask'
      )
    mask = mask_io.read_mask(path, None, sequence.binary_255, single_object)
    frame_size = frame_io.image_size(sequence.frames[i])
    if mask.shape != frame_size:
      raise ValueError(
        f'sequence {sequence.name!r}: mask {path} is {mask.shape} but its frame '
        f'is {frame_size} (H, W)'
      )
    masks.append(mask_io.resize_ids(mask, size))
  return np.stack(masks)


def first_mask(
  sequence: Sequence, single_object: bool, size: tuple[int, int] | None = None
) -> np.ndarray:
  """[H, W] uint8 first-frame object ids (0 = background, void counted as background)."""
  mask = load_masks(sequence, [0], size, single_object)[0]
  return np.where(mask == mask_io.VOID, 0, mask).astype(np.uint8)
