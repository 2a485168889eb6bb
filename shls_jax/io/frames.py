"""Frames on disk: images read as RGB uint8 and resized, folders of images, and videos streamed.

Conventions: frames are [H, W, 3] uint8 RGB; sizes are (H, W).
"""

import os
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
from PIL import Image

IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp')
DEFAULT_FPS = 24.0
# FFmpeg's own lines about a damaged video would precede the one error this module raises for it
# (read when OpenCV first opens a video; a user's setting wins).
os.environ.setdefault('OPENCV_FFMPEG_LOGLEVEL', '-8')


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


def image_size(path: Path) -> tuple[int, int]:
  """(H, W) of an image, read from its header only."""
  with Image.open(path) as image:
    return image.height, image.width


def image_files(folder: Path) -> list[Path]:
  """The images (`IMAGE_SUFFIXES`, any case) of a folder, sorted by name."""
  return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


class VideoSource:
  """Frames of a video file or of a folder of images, read one at a time.

  Attributes:
    size: (H, W) of the frames.
    fps: frames per second (the file's; `default_fps` for a folder or a file without one).
    count: number of frames (for a file, as its header says; may be approximate).
  """

  def __init__(self, path, default_fps: float = DEFAULT_FPS):
    self.path = Path(path)
    if self.path.is_dir():
      self.files = image_files(self.path)
      if not self.files:
        raise FileNotFoundError(f'frame folder {self.path} holds no {"/".join(IMAGE_SUFFIXES)}')
      first = cv2.imread(str(self.files[0]), cv2.IMREAD_COLOR)
      if first is None:
        raise ValueError(f'cannot read frame {self.files[0]}')
      self.size, self.fps, self.count = first.shape[:2], default_fps, len(self.files)
      return
    if not self.path.is_file():
      raise FileNotFoundError(f'video {self.path} does not exist')
    self.files = None
    capture = cv2.VideoCapture(str(self.path))
    ok, first = capture.read() if capture.isOpened() else (False, None)
    if not ok:
      raise ValueError(f'cannot read video {self.path}: not a video OpenCV can decode')
    fps = capture.get(cv2.CAP_PROP_FPS)
    self.size, self.fps = first.shape[:2], fps if fps and fps > 0 else default_fps
    self.count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    capture.release()

  def __iter__(self) -> Iterator[np.ndarray]:
    """[H, W, 3] uint8 RGB frames in order."""
    if self.files is not None:
      for path in self.files:
        frame = read_frame(path)
        if frame.shape[:2] != self.size:
          raise ValueError(f'frame {path} is {frame.shape[:2]}, the first frame {self.size}')
        yield frame
      return
    capture = cv2.VideoCapture(str(self.path))
    try:
      while True:
        ok, frame = capture.read()
        if not ok:
          return
        yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    finally:
      capture.release()
