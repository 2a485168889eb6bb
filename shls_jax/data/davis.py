"""DAVIS video object segmentation datasets: sequence listing, frames and annotation masks.

Two on-disk layouts are read:

* DAVIS-2017 style: `JPEGImages/<res>/<seq>/*.jpg`, `Annotations/<res>/<seq>/*.png` (indexed PNG,
  pixel value = object id, 0 = background, 255 = void) and `ImageSets/2017/<split>.txt` with one
  sequence name per line.
* DAVIS-2016 release: the same image folders, masks stored as 0/255, and
  `ImageSets/<res>/<split>.txt` listing "<image path> <annotation path>" lines.
"""

import dataclasses
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

_IMAGE_DIR = 'JPEGImages'
_MASK_DIR = 'Annotations'
VOID = 255


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


_PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'


def _read_unfiltered_png(path: Path) -> np.ndarray | None:
  """[H, W] values of an 8-bit palette or grayscale, non-interlaced PNG whose rows are all stored
  unfiltered (as PIL writes masks), by inflating its image data alone; None for any other PNG.

  Masks are inflate-bound, and PIL's decoder adds half as much again on top of zlib.

  Raises:
    ValueError: the image data is damaged (PIL would decode it without a word).
  """
  data = path.read_bytes()
  if data[:8] != _PNG_SIGNATURE or data[12:16] != b'IHDR':
    return None
  width, height, depth, colour, _, _, interlace = struct.unpack('>IIBBBBB', data[16:29])
  if depth != 8 or colour not in (0, 3) or interlace:
    return None
  chunks, pos = [], 8
  while pos + 8 <= len(data):
    (length,) = struct.unpack('>I', data[pos : pos + 4])
    if data[pos + 4 : pos + 8] == b'IDAT':
      chunks.append(data[pos + 8 : pos + 8 + length])
    pos += 12 + length
  try:
    pixels = zlib.decompress(b''.join(chunks))
  except zlib.error as error:
    raise ValueError(f'mask {path} is damaged: its image data does not inflate ({error})') from None
  if len(pixels) != height * (width + 1):
    return None
  rows = np.frombuffer(pixels, np.uint8).reshape(height, width + 1)
  return None if rows[:, 0].any() else np.ascontiguousarray(rows[:, 1:])


def read_indexed_png(path) -> np.ndarray:
  """Raw [H, W] uint8 values of a palette (indices) or grayscale PNG mask."""
  path = Path(path)
  if not path.is_file():
    raise FileNotFoundError(f'mask {path} does not exist')
  values = _read_unfiltered_png(path)
  if values is not None:
    return values
  # Every other PNG (filtered rows, other depths, not a PNG) goes through PIL, which also gives
  # the errors.
  with Image.open(path) as image:
    if image.mode not in ('P', 'L', '1'):
      raise ValueError(
        f'mask {path} has PIL mode {image.mode!r}: expected an indexed (P) or '
        'grayscale (L) PNG holding object ids'
      )
    return np.asarray(image, dtype=np.uint8)


def _image_size(path: Path) -> tuple[int, int]:
  """(H, W) of an image, read from its header only."""
  with Image.open(path) as image:
    return image.height, image.width


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
  frame_size, mask_size = _image_size(frames[0]), _image_size(annotations[0])
  if frame_size != mask_size:
    raise ValueError(
      f'sequence {name!r}: frame {frames[0]} is {frame_size} but its mask is {mask_size} (H, W)'
    )
  first = read_indexed_png(annotations[0])
  present = np.unique(first)
  # A first frame holding only 0 and 255 is a 0/255 single-object mask: DAVIS-2017 first frames
  # always show their objects with ids 1..K.
  binary_255 = bool(present[-1] == VOID and np.all(np.isin(present, (0, VOID))))
  num_objects = 1 if binary_255 else int(present[present != VOID].max(initial=0))
  return Sequence(name, tuple(frames), annotations, tuple(range(1, num_objects + 1)), binary_255)


def load_sequences(root, split: str | None = None, resolution: str = '480p') -> list[Sequence]:
  """`load_sequence` for every sequence of `list_sequences(root, split, resolution)`."""
  return [load_sequence(root, name, resolution) for name in list_sequences(root, split, resolution)]


def _id_table(binary_255: bool) -> np.ndarray:
  """Lookup table raw value -> id merging every object into 1 (255 stays void unless binary)."""
  table = np.ones(256, np.uint8)
  table[0] = 0
  if not binary_255:
    table[VOID] = VOID
  return table


_BINARY_255_IDS = _id_table(binary_255=True)
_SINGLE_OBJECT_IDS = _id_table(binary_255=False)
_BINARY_255_OBJECTS = (_BINARY_255_IDS == 1).astype(np.uint8)
_ANY_OBJECT = (_SINGLE_OBJECT_IDS == 1).astype(np.uint8)


def object_pixels(raw: np.ndarray, binary_255: bool = False) -> np.ndarray:
  """[H, W] bool: the pixels of any object of a raw mask (`decode_mask(..., single_object=True)
  == 1` in one table lookup)."""
  return cv2.LUT(raw, _BINARY_255_OBJECTS if binary_255 else _ANY_OBJECT).view(bool)


def decode_mask(
  raw: np.ndarray, binary_255: bool | None = False, single_object: bool = False
) -> np.ndarray:
  """Object ids of a raw mask.

  Args:
    raw: [H, W] uint8 PNG values.
    binary_255: the mask stores its single object as 255 (DAVIS-2016 release); None decides
      per mask: one holding only 0 and 255 is a binarised single-object mask (no id 255 exists:
      K < 255).
    single_object: merge all objects into object 1 (DAVIS-2016 scoring of multi-object masks).

  Returns:
    [H, W] uint8: 0 = background, 1..K = objects, 255 = void (never for binary_255 masks).
  """
  if binary_255 is None:
    binary_255 = raw.max(initial=0) == 255 and bool(np.all((raw == 0) | (raw == 255)))
  if binary_255:
    return cv2.LUT(raw, _BINARY_255_IDS)
  if single_object:
    return cv2.LUT(raw, _SINGLE_OBJECT_IDS)
  return raw


def read_frame(path, size: tuple[int, int] | None = None) -> np.ndarray:
  """RGB uint8 [H, W, 3] image; `size` = (H, W) resizes bilinearly."""
  path = Path(path)
  image = cv2.imread(str(path), cv2.IMREAD_COLOR)
  if image is None:
    raise FileNotFoundError(f'cannot read image {path}')
  return resize_frame(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), size)


def resize_frame(image: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
  """[H, W, 3] image resized bilinearly to `size` = (H, W); None keeps it."""
  if size is None or image.shape[:2] == tuple(size):
    return image
  return cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)


def resize_ids(mask: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
  """Nearest-neighbour resize to (H, W) so that ids stay ids; None keeps the mask."""
  if size is None or mask.shape == tuple(size):
    return mask
  return cv2.resize(mask, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)


def read_mask(
  path,
  size: tuple[int, int] | None = None,
  binary_255: bool | None = False,
  single_object: bool = False,
) -> np.ndarray:
  """[H, W] uint8 object ids of an annotation or result PNG (see `decode_mask`, also for
  binary_255 None); `size` resizes nearest."""
  return resize_ids(decode_mask(read_indexed_png(path), binary_255, single_object), size)


def load_frames(sequence: Sequence, size: tuple[int, int] | None = None) -> np.ndarray:
  """All frames as RGB uint8 [T, H, W, 3]; `size` = (H, W) resizes bilinearly."""
  frames = [read_frame(p, size) for p in sequence.frames]
  shapes = {f.shape for f in frames}
  if len(shapes) > 1:
    raise ValueError(f'sequence {sequence.name!r} mixes frame sizes {sorted(shapes)}')
  return np.stack(frames)


def load_masks(
  sequence: Sequence, indices=None, size: tuple[int, int] | None = None, single_object: bool = False
) -> np.ndarray:
  """Annotation masks as uint8 [T, H, W] (ids 0..K, 255 = void; see `decode_mask`).

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
    mask = read_mask(path, None, sequence.binary_255, single_object)
    frame_size = _image_size(sequence.frames[i])
    if mask.shape != frame_size:
      raise ValueError(
        f'sequence {sequence.name!r}: mask {path} is {mask.shape} but its frame '
        f'is {frame_size} (H, W)'
      )
    masks.append(resize_ids(mask, size))
  return np.stack(masks)


def palette() -> np.ndarray:
  """The DAVIS (PASCAL VOC) colour map: [256, 3] uint8, id 0 black, 1 red, 2 green, ..."""
  ids = np.arange(256)
  colours = np.zeros((256, 3), np.int64)
  # Bits 0, 1, 2 of each id triple go to R, G, B, filling their bits from the top down.
  for shift in range(8):
    for channel in range(3):
      colours[:, channel] |= ((ids >> (3 * shift + channel)) & 1) << (7 - shift)
  return colours.astype(np.uint8)


def write_mask(path, mask: np.ndarray, colours: np.ndarray | None = None) -> None:
  """Writes [H, W] object ids (integers 0..255) as an indexed PNG with the palette `colours`
  ([256, 3] uint8; default the DAVIS one)."""
  mask = np.asarray(mask)
  if mask.ndim != 2:
    raise ValueError(f'mask must be [H, W], got shape {mask.shape}')
  if not np.issubdtype(mask.dtype, np.integer) and mask.dtype != bool:
    raise ValueError(f'mask must hold integer object ids, got dtype {mask.dtype}')
  if mask.size and (mask.min() < 0 or mask.max() > 255):
    raise ValueError(f'object ids must lie in 0..255, got {mask.min()}..{mask.max()}')
  image = Image.fromarray(mask.astype(np.uint8), mode='P')
  image.putpalette(
    (palette() if colours is None else np.asarray(colours, np.uint8)).ravel().tolist()
  )
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  image.save(path)
