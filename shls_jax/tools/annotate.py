r"""Makes an annotation by clicking superpixels in a browser: the mask `shls-segment` starts from.

  shls-annotate --video clip.mp4|FRAMES_DIR --out first.png [--frame K] [--slic_segments 300] \
      [--port 0] [--checkpoint CKPT --segment_out OUT] [--overwrite] [--no_browser]

Serves a page on http://127.0.0.1:PORT/ (a free port unless `--port`; bound to this machine
only) showing any frame of the video with its superpixels outlined. A click adds the superpixel
under the pointer to the chosen object or, if it is that object's already, gives it back to the
background; a drag paints (or erases) every superpixel it crosses. Objects 1..9 by key or button,
`z` or the Undo button undoes the last stroke. Save writes `--out`, the indexed palette PNG of
object ids that `shls-segment --mask` reads, for the frame shown (the page says which: pass it
as `--mask_frame`). With `--checkpoint`, Segment runs `shls-segment` on the whole video from the
saved mask, into `--segment_out`, and the page plays the overlay when it is done.

Superpixels are the project's SLIC (`--slic_segments`) at the frame's size, computed when a
frame is first shown. A folder's frames are read when shown; a video file's are decoded once at
start and kept JPEG-encoded (tens of KB a frame at 480p: a long video is better annotated from a
folder of its frames). `--out` (and `--segment_out`) are refused if they exist, unless
`--overwrite`; each save replaces `--out` whole (written under a temporary name, then renamed).
Ctrl-C stops the server.
"""

import http.server
import io
import json
import os
import re
import sys
import threading
import webbrowser
from pathlib import Path

import cv2
import numpy as np
from absl import flags
from PIL import Image

from shls_jax import superpixels
from shls_jax.io import frames as frame_io
from shls_jax.io import masks as mask_io
from shls_jax.tools import cli, segment

FLAGS = flags.FLAGS
NUM_OBJECTS = 9
_PAGE = Path(__file__).with_name('annotate.html')


class Frames:
  """Random access to a video's frames: a folder's files, or a file's frames decoded once and
  kept JPEG-encoded."""

  def __init__(self, source: frame_io.VideoSource):
    self.source = source
    self._encoded = None if source.files is not None else [_jpeg(f) for f in source]
    self.count = len(source.files) if source.files is not None else len(self._encoded)
    if self.count == 0:
      raise ValueError(f'{source.path} has no frame')

  def jpeg(self, index: int) -> bytes:
    if self._encoded is not None:
      return self._encoded[index]
    return _jpeg(frame_io.read_frame(self.source.files[index]))

  def rgb(self, index: int) -> np.ndarray:
    if self._encoded is not None:
      bgr = cv2.imdecode(np.frombuffer(self._encoded[index], np.uint8), cv2.IMREAD_COLOR)
      return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    return frame_io.read_frame(self.source.files[index])


def _jpeg(rgb: np.ndarray) -> bytes:
  ok, data = cv2.imencode(
    '.jpg', cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92]
  )
  if not ok:
    raise ValueError('cannot encode a frame as JPEG')
  return data.tobytes()


def _png(image: np.ndarray) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, format='PNG')
  return buffer.getvalue()


def label_image(labels: np.ndarray) -> np.ndarray:
  """[H, W, 3] uint8 RGB encoding of superpixel labels 1..N < 65536: R = low byte, G = high
  byte (a lossless PNG the page decodes)."""
  labels = labels.astype(np.int64)
  if labels.max() >= 1 << 16:
    raise ValueError(f'{labels.max()} superpixels: the page takes fewer than 65536')
  return np.stack([labels & 255, labels >> 8, np.zeros_like(labels)], -1).astype(np.uint8)


def mask_of(labels: np.ndarray, assignment) -> np.ndarray:
  """[H, W] uint8 ids: superpixel label l (1..N) takes object `assignment[l - 1]` (0..9).

  Raises:
    ValueError: an assignment of the wrong length or with ids outside 0..9.
  """
  assignment = np.asarray(assignment)
  count = int(labels.max())
  if assignment.shape != (count,) or not np.issubdtype(assignment.dtype, np.integer):
    raise ValueError(f'expected {count} integer object ids, one per superpixel')
  if assignment.size and (assignment.min() < 0 or assignment.max() > NUM_OBJECTS):
    raise ValueError(f'object ids must lie in 0..{NUM_OBJECTS}')
  return assignment.astype(np.uint8)[labels - 1]


def write_png_atomically(path: Path, mask: np.ndarray) -> None:
  """Writes an indexed mask PNG under a temporary name, then renames it over `path`."""
  partial = path.with_name(f'.{path.name}.partial.png')
  mask_io.write_mask(partial, mask)
  os.replace(partial, path)


class Session:
  """What the page works on: the frames, their superpixels (computed on first use), the saved
  annotation and the segmentation run."""

  def __init__(
    self,
    frames: Frames,
    out: Path,
    slic_segments: int,
    engine_settings: dict | None = None,
    segment_out: Path | None = None,
    initial_frame: int = 0,
  ):
    self.frames = frames
    self.out = out
    self.slic_segments = slic_segments
    self.engine_settings = engine_settings
    self.segment_out = segment_out
    self.initial_frame = initial_frame
    self._labels: dict[int, np.ndarray] = {}
    self._lock = threading.Lock()
    self.saved: tuple[int, np.ndarray] | None = None
    self.run = {'state': 'idle', 'frames': 0, 'error': ''}

  def labels(self, index: int) -> np.ndarray:
    with self._lock:
      if index not in self._labels:
        self._labels[index] = superpixels.compute(
          self.frames.rgb(index), 'slic', n_segments=self.slic_segments
        )
      return self._labels[index]

  def save(self, index: int, assignment) -> dict:
    mask = mask_of(self.labels(index), assignment)
    if not mask.any():
      raise ValueError('no superpixel is given to an object: nothing to save')
    self.out.parent.mkdir(parents=True, exist_ok=True)
    write_png_atomically(self.out, mask)
    self.saved = (index, mask)
    objects = sorted(int(i) for i in np.unique(mask) if i)
    return {'path': str(self.out), 'frame': index, 'objects': objects}

  def start_segment(self) -> None:
    if self.engine_settings is None:
      raise ValueError('start shls-annotate with --checkpoint and --segment_out to segment')
    if self.saved is None:
      raise ValueError('save an annotation first')
    if self.run['state'] == 'running':
      raise ValueError('a segmentation is already running')
    self.run = {'state': 'running', 'frames': 0, 'error': ''}
    threading.Thread(target=self._segment, args=self.saved, daemon=True).start()

  def _segment(self, index: int, mask: np.ndarray) -> None:
    try:
      engine, method = segment.build_engine(**self.engine_settings)
      count, _ = segment.segment(
        self.frames.source,
        {index: mask},
        engine,
        self.segment_out,
        slic_segments=self.engine_settings['slic_segments'],
        progress=False,
        method=method,
      )
      self.run = {'state': 'done', 'frames': count, 'error': ''}
    except Exception as error:  # noqa: BLE001 - shown on the page, the server goes on
      self.run = {'state': 'failed', 'frames': 0, 'error': str(error)}

  def overlay(self, index: int) -> bytes:
    path = self.segment_out / segment.MASKS_DIR / f'{index:05d}.png'
    if self.run['state'] != 'done' or not path.is_file():
      raise FileNotFoundError(f'no segmented frame {index}')
    return _jpeg(mask_io.overlay(self.frames.rgb(index), mask_io.read_indexed_png(path)))

  def info(self) -> dict:
    height, width = self.frames.source.size
    return {
      'frames': self.frames.count,
      'height': height,
      'width': width,
      'frame': self.initial_frame,
      'objects': NUM_OBJECTS,
      'palette': mask_io.palette()[: NUM_OBJECTS + 1].tolist(),
      'out': str(self.out),
      'can_segment': self.engine_settings is not None,
    }


def handler_for(session: Session):
  """The request handler class of `session`'s server."""

  class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):  # requests are not news
      pass

    def _send(self, body: bytes, kind: str, status: int = 200) -> None:
      self.send_response(status)
      self.send_header('Content-Type', kind)
      self.send_header('Content-Length', str(len(body)))
      self.send_header('Cache-Control', 'no-store')
      self.end_headers()
      self.wfile.write(body)

    def _json(self, value, status: int = 200) -> None:
      self._send(json.dumps(value).encode(), 'application/json', status)

    def _frame_index(self, text: str) -> int:
      index = int(text)
      if not 0 <= index < session.frames.count:
        raise FileNotFoundError(f'no frame {index}')
      return index

    def do_GET(self):
      routes = {
        r'/': lambda: self._send(_PAGE.read_bytes(), 'text/html; charset=utf-8'),
        r'/info': lambda: self._json(session.info()),
        r'/status': lambda: self._json(session.run),
        r'/frame/(\d+)\.jpg': lambda i: self._send(
          session.frames.jpeg(self._frame_index(i)), 'image/jpeg'
        ),
        r'/labels/(\d+)\.png': lambda i: self._send(
          _png(label_image(session.labels(self._frame_index(i)))), 'image/png'
        ),
        r'/overlay/(\d+)\.jpg': lambda i: self._send(
          session.overlay(self._frame_index(i)), 'image/jpeg'
        ),
      }
      self._route(routes)

    def do_POST(self):
      length = int(self.headers.get('Content-Length') or 0)
      try:
        body = json.loads(self.rfile.read(length) or b'{}')
      except json.JSONDecodeError:
        self._json({'error': 'the request is not JSON'}, 400)
        return

      def save():
        self._json(session.save(self._frame_index(str(body['frame'])), body['assignment']))

      def start():
        session.start_segment()
        self._json(session.run)

      self._route({r'/save': save, r'/segment': start})

    def _route(self, routes):
      for pattern, respond in routes.items():
        match = re.fullmatch(pattern, self.path)
        if match:
          try:
            respond(*match.groups())
          except FileNotFoundError as error:
            self._json({'error': str(error)}, 404)
          except (ValueError, KeyError, TypeError) as error:
            self._json({'error': str(error)}, 400)
          return
      self._json({'error': f'no page {self.path}'}, 404)

  return Handler


def serve(session: Session, port: int = 0) -> http.server.ThreadingHTTPServer:
  """A server of `session` on 127.0.0.1:`port` (0: a free one), not started: call
  `serve_forever()` (its `server_address` holds the port)."""
  try:
    return http.server.ThreadingHTTPServer(('127.0.0.1', port), handler_for(session))
  except OSError as error:
    raise ValueError(f'cannot listen on 127.0.0.1:{port}: {error.strerror}') from None


def define_flags() -> None:
  flags.DEFINE_string('video', None, 'A video file or a folder of frames.')
  flags.DEFINE_string('out', None, 'Annotation PNG to write (indexed object ids).')
  flags.DEFINE_integer('frame', 0, 'Frame shown first.', lower_bound=0)
  flags.DEFINE_integer('slic_segments', 300, 'SLIC superpixels per frame.', lower_bound=2)
  flags.DEFINE_integer('port', 0, 'Port on 127.0.0.1 (0: a free one).', lower_bound=0)
  flags.DEFINE_string('checkpoint', None, 'Checkpoint for Segment (as shls-segment takes).')
  flags.DEFINE_string('segment_out', None, 'Output folder of Segment (as shls-segment --out).')
  flags.DEFINE_bool('overwrite', False, 'Replace an existing --out (and --segment_out).')
  flags.DEFINE_bool('no_browser', False, 'Only print the address; do not open a browser.')
  flags.mark_flags_as_required(['video', 'out'])


def main(argv) -> None:
  cli.check_no_arguments(argv)
  out = Path(FLAGS.out)
  if out.suffix.lower() != '.png':
    raise ValueError(f'--out {out} must name a .png file')
  if out.is_dir():
    raise ValueError(f'--out {out} is a folder: name the PNG to write')
  if out.exists() and not FLAGS.overwrite:
    raise FileExistsError(f'{out} exists: pass --overwrite to replace it')
  if bool(FLAGS.checkpoint) != bool(FLAGS.segment_out):
    raise ValueError('Segment needs both --checkpoint and --segment_out')
  engine_settings = segment_out = None
  if FLAGS.checkpoint:
    segment_out = Path(FLAGS.segment_out)
    segment.check_output(segment_out, FLAGS.overwrite)
    if not Path(FLAGS.checkpoint).exists():
      raise FileNotFoundError(f'checkpoint {FLAGS.checkpoint} does not exist')
    engine_settings = {'checkpoint': FLAGS.checkpoint, 'slic_segments': 1000}
  frames = Frames(frame_io.VideoSource(FLAGS.video))
  if FLAGS.frame >= frames.count:
    raise ValueError(f'{FLAGS.video} has no frame {FLAGS.frame} (it has {frames.count})')
  session = Session(frames, out, FLAGS.slic_segments, engine_settings, segment_out, FLAGS.frame)
  server = serve(session, FLAGS.port)
  url = f'http://127.0.0.1:{server.server_address[1]}/'
  print(f'annotate at {url} (Ctrl-C to stop); saving to {out}', flush=True)
  if not FLAGS.no_browser:
    webbrowser.open(url)
  try:
    server.serve_forever()
  except KeyboardInterrupt:
    # The way to stop a server: what was saved is whole (each save is one rename).
    saved = f'saved frame {session.saved[0]} to {out}' if session.saved else 'nothing saved'
    print(f'stopped: {saved}', flush=True)
  finally:
    server.server_close()


def run() -> None:
  cli.run(main, define_flags, __name__)


if __name__ == '__main__':
  sys.exit(run())
