"""Still images with saliency masks, the training source of SHLS, and their region labels.

Two layouts are read:

* MSRA10K: `<root>/Imgs/<name>.jpg` with its mask `<root>/Imgs/<name>.png` beside it, or in a
  separate pseudo-mask folder (e.g. the masks of an unsupervised saliency method), and optional
  split files `<root>/<split>.txt` listing one name per line (with or without extension).
* Any folder of images (jpg, jpeg, png, bmp) with a folder of PNG pseudo-masks of the same stems.

A mask is a soft saliency map: float32 in [0, 1] (grey value / 255); binary masks are its
special case. Labels of a still image (`region_labels`) are [H, W] int32 starting at 1, where
label 1 is the region holding the top-left pixel (normally the background).
"""

import dataclasses
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
from scipy import ndimage
from skimage import measure

from shls_jax.io import frames as frame_io

# Regions smaller than this fraction of the image are absorbed by their surroundings.
MIN_REGION_FRACTION = 0.001


@dataclasses.dataclass(frozen=True)
class StillSample:
  """One still image and its saliency mask, both on disk."""

  name: str
  image_path: Path
  mask_path: Path


def _require_dir(path: Path, what: str) -> Path:
  if not path.is_dir():
    raise FileNotFoundError(f'{what} {path} is not a directory')
  return path


def _read_split_names(path: Path) -> list[str]:
  if not path.is_file():
    raise FileNotFoundError(f'split file {path} does not exist')
  names = [Path(line.strip()).stem for line in path.read_text().splitlines() if line.strip()]
  if not names:
    raise ValueError(f'split file {path} lists no images')
  return names


def list_msra10k(root, split: str | None = None, mask_dir=None) -> list[StillSample]:
  """Samples of an MSRA10K-layout folder.

  Args:
    root: folder holding `Imgs/` (and the split files).
    split: None for every JPEG of `Imgs/` (sorted by name), else a split name read from
      `<root>/<split>.txt` (order of the file kept).
    mask_dir: folder of the PNG masks; None for the masks beside the images in `Imgs/`; a
      relative path is taken under `root` (e.g. 'saliency').

  Returns:
    One `StillSample` per image, in listing order.
  """
  root = _require_dir(Path(root), 'MSRA10K root')
  image_dir = _require_dir(root / 'Imgs', 'MSRA10K image folder')
  masks = image_dir if mask_dir is None else _require_dir(root / mask_dir, 'mask folder')
  if split is None:
    names = sorted(p.stem for p in image_dir.glob('*.jpg'))
    if not names:
      raise ValueError(f'no .jpg images in {image_dir}')
  else:
    names = _read_split_names(root / f'{split}.txt')
  samples = [StillSample(n, image_dir / f'{n}.jpg', masks / f'{n}.png') for n in names]
  _check_files(samples)
  return samples


def list_folder(image_dir, mask_dir) -> list[StillSample]:
  """Samples of a folder of images whose PNG masks lie in `mask_dir` under the same stems.

  Images without a mask are skipped (an unsupervised saliency method may fail on a few); at
  least one pair must exist.
  """
  image_dir = _require_dir(Path(image_dir), 'image folder')
  mask_dir = _require_dir(Path(mask_dir), 'mask folder')
  images = frame_io.image_files(image_dir)
  samples = [
    StillSample(p.stem, p, mask_dir / f'{p.stem}.png')
    for p in images
    if (mask_dir / f'{p.stem}.png').is_file()
  ]
  if not samples:
    raise ValueError(f'no image of {image_dir} has a mask of the same stem in {mask_dir}')
  return samples


def _check_files(samples: Sequence[StillSample]) -> None:
  for sample in samples:
    for path in (sample.image_path, sample.mask_path):
      if not path.is_file():
        raise FileNotFoundError(f'sample {sample.name!r}: {path} does not exist')


def load_mask(path) -> np.ndarray:
  """Soft saliency map float32 [H, W] in [0, 1] of a grey (or colour, averaged) mask image."""
  mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
  if mask is None:
    raise FileNotFoundError(f'cannot read mask {path}')
  return mask.astype(np.float32) / 255.0


def load_sample(sample: StillSample) -> tuple[np.ndarray, np.ndarray]:
  """(RGB uint8 [H, W, 3], soft mask float32 [H, W] in [0, 1]) of a sample of matching size."""
  image = frame_io.read_frame(sample.image_path)
  mask = load_mask(sample.mask_path)
  if image.shape[:2] != mask.shape:
    raise ValueError(
      f'sample {sample.name!r}: image {sample.image_path} is {image.shape[:2]} '
      f'but mask {sample.mask_path} is {mask.shape} (H, W)'
    )
  return image, mask


class StillImageSet:
  """Random access to the (image, soft mask) pairs of a list of samples.

  `len(source)` and `source[i]` are what pseudo-sequences and the input pipeline need; any
  object offering them can replace this one.
  """

  def __init__(self, samples: Sequence[StillSample]):
    if not samples:
      raise ValueError('a still-image set needs at least one sample')
    self.samples = list(samples)

  def __len__(self) -> int:
    return len(self.samples)

  def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
    return load_sample(self.samples[index])


def _contour(binary: np.ndarray) -> np.ndarray:
  """Pixels of `binary` with a 3x3 neighbour outside it (the image edge repeats outwards)."""
  interior = ndimage.minimum_filter(binary.astype(np.uint8), size=3, mode='nearest')
  return binary & (interior == 0)


def _fill_contour(labels: np.ndarray) -> np.ndarray:
  """Zero pixels take the largest label of their 8 neighbours (mirror padding without the edge)."""
  padded = np.pad(labels, 1, mode='reflect')
  footprint = np.ones((3, 3), bool)
  footprint[1, 1] = False
  neighbours = ndimage.maximum_filter(padded, footprint=footprint, mode='constant')[1:-1, 1:-1]
  return np.where(labels == 0, neighbours, labels)


def _absorb_small(labels: np.ndarray, min_fraction: float) -> np.ndarray:
  """Merges regions below `min_fraction` of the image into their neighbourhood, then densifies.

  A small region takes the most frequent other label (ties: smallest) inside its bounding box
  widened by one pixel; the surviving labels keep their order and are renumbered 1..L.
  """
  num = int(labels.max())
  if num < 2:
    return labels
  counts = np.bincount(labels.ravel(), minlength=num + 1)
  min_pixels = min_fraction * labels.size
  out = labels.copy()
  for k, box in enumerate(ndimage.find_objects(labels), start=1):
    if box is None or counts[k] >= min_pixels:
      continue
    widened = tuple(slice(max(0, s.start - 1), s.stop + 1) for s in box)
    around = labels[widened]
    others = np.bincount(around[around != k], minlength=num + 1)
    if others.any():
      out[labels == k] = int(np.argmax(others))
  # Labels are small positive integers: a table of the present ones renumbers them in order,
  # as np.unique's inverse would, without sorting every pixel.
  ranks = np.cumsum(np.bincount(out.ravel()) > 0).astype(np.int32)
  return ranks[out]


def region_labels(mask: np.ndarray, min_fraction: float = MIN_REGION_FRACTION) -> np.ndarray:
  """Region labels of a still image from its saliency mask.

  The mask is binarised (> 0); its 1-pixel inner contour separates 4-connected regions, which
  are numbered in raster order; contour pixels then take the largest label among their 8
  neighbours; pixels still unlabelled become 1; regions under `min_fraction` of the image are
  absorbed by their surroundings and labels are renumbered densely.

  Args:
    mask: [H, W] saliency map (any numeric dtype; > 0 is foreground).
    min_fraction: smallest region kept, as a fraction of the image (0 keeps all).

  Returns:
    [H, W] int32 labels 1..L; label 1 holds the top-left pixel (normally the background).
  """
  mask = np.asarray(mask)
  if mask.ndim != 2 or mask.size == 0:
    raise ValueError(f'a mask must be a non-empty [H, W] array, got shape {mask.shape}')
  if min(mask.shape) < 2:
    raise ValueError(f'a mask needs at least 2 rows and columns, got shape {mask.shape}')
  regions = measure.label(~_contour(mask > 0), connectivity=1).astype(np.int32)
  labels = _fill_contour(regions)
  labels[labels == 0] = 1
  return _absorb_small(labels, min_fraction)
