"""The bad-input sweep: every command, given what a user can get wrong, ends with one line
`error: ...` on stderr (the only line there but the log records of its start) and a non-zero
status, prints no traceback, leaves every file a user wrote
as it was, and leaves no output that a re-run would take for finished.

`CASES` lists (command, what is wrong, arguments, expected words); the full disk (a writer that
raises ENOSPC) and Ctrl-C (SIGINT mid-run) are tested apart, where the error line follows the
progress bar. The README quotes the count.
"""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import jax
import numpy as np
import pytest

from shls_jax import checkpoints
from shls_jax.io import masks as mask_io
from shls_jax.model import shls

ROOT = Path(__file__).resolve().parents[1]
FRAMES, HEIGHT, WIDTH = 6, 48, 64


def _frames(count: int = FRAMES) -> np.ndarray:
  frames = np.full((count, HEIGHT, WIDTH, 3), 110, np.uint8)
  for t in range(count):
    frames[t, 12:32, 10 + 2 * t : 30 + 2 * t] = (220, 40, 40)
  return frames


def _write_frames(folder: Path, frames: np.ndarray, suffix: str = '.jpg') -> Path:
  folder.mkdir(parents=True, exist_ok=True)
  for t, frame in enumerate(frames):
    cv2.imwrite(str(folder / f'{t:05d}{suffix}'), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
  return folder


def _mask() -> np.ndarray:
  mask = np.zeros((HEIGHT, WIDTH), np.uint8)
  mask[12:32, 10:30] = 1
  return mask


@pytest.fixture(scope='module')
def files(tmp_path_factory):
  """Good and bad inputs, made once: {name: path}."""
  root = tmp_path_factory.mktemp('inputs')
  f = {'root': root}
  f['frames'] = _write_frames(root / 'frames', _frames())
  f['video'] = root / 'clip.mp4'
  writer = cv2.VideoWriter(str(f['video']), cv2.VideoWriter_fourcc(*'mp4v'), 10.0, (WIDTH, HEIGHT))
  for frame in _frames(30):
    writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
  writer.release()
  data = f['video'].read_bytes()
  f['truncated_video'] = root / 'truncated.mp4'
  f['truncated_video'].write_bytes(data[: len(data) // 3])
  f['nonimage_frames'] = _write_frames(root / 'nonimage', _frames())
  (f['nonimage_frames'] / '00003.jpg').write_text('not an image')
  mask_io.write_mask(root / 'mask.png', _mask())
  f['mask'] = root / 'mask.png'
  mask_io.write_mask(root / 'small.png', _mask()[:20, :20])
  f['small_mask'] = root / 'small.png'
  mask_io.write_mask(root / 'empty.png', np.zeros((HEIGHT, WIDTH), np.uint8))
  f['empty_mask'] = root / 'empty.png'
  data = f['mask'].read_bytes()
  f['truncated_mask'] = root / 'truncated.png'
  f['truncated_mask'].write_bytes(data[: len(data) // 2])
  colour = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
  colour[_mask() > 0] = (0, 255, 0)
  cv2.imwrite(str(root / 'colour.png'), colour)
  f['colour_mask'] = root / 'colour.png'
  f['ckpt'] = checkpoints.save_variables(root / 'ckpt', shls.init_variables(jax.random.PRNGKey(0)))
  f['broken_ckpt'] = root / 'broken_ckpt'
  f['broken_ckpt'].mkdir()
  (f['broken_ckpt'] / '0').mkdir()
  (f['broken_ckpt'] / '0' / '_CHECKPOINT_METADATA').write_text('{')
  f['truncated_pth'] = root / 'truncated.pth'
  f['truncated_pth'].write_bytes(b'PK\x03\x04' + b'\x00' * 64)
  # A DAVIS root of one sequence, and results of the wrong size and of unknown object ids.
  davis = root / 'davis'
  _write_frames(davis / 'JPEGImages' / '480p' / 'seq', _frames())
  for t in range(FRAMES):
    mask_io.write_mask(davis / 'Annotations' / '480p' / 'seq' / f'{t:05d}.png', _mask())
  f['davis'] = davis
  for name, mask in (
    ('wrong_size', np.zeros((HEIGHT // 2, WIDTH // 2), np.uint8)),
    ('wrong_ids', np.full((HEIGHT, WIDTH), 3, np.uint8)),
  ):
    for t in range(FRAMES):
      mask_io.write_mask(root / name / 'seq' / f'{t:05d}.png', mask)
    f[name] = root / name
  f['foreign_results'] = root / 'foreign'
  f['foreign_results'].mkdir()
  (f['foreign_results'] / 'evaluation.json').write_text('{"weights": "other", "config": {}}')
  f['user_file'] = root / 'user.txt'
  f['user_file'].write_text('a user file')
  f['user_png'] = root / 'user.png'
  f['user_png'].write_bytes(b'a user png')
  f['user_pth'] = root / 'user.pth'
  f['user_pth'].write_bytes(b'a user pth')
  f['user_dir'] = root / 'user_dir'
  f['user_dir'].mkdir()
  (f['user_dir'] / 'notes.txt').write_text('a user note')
  f['stills'] = _write_frames(root / 'stills', _frames(2))
  f['bad_npz'] = root / 'bad_vectors'
  f['bad_npz'].mkdir()
  (f['bad_npz'] / 'vectors.npz').write_bytes(b'PK\x03\x04 truncated')
  return f


# (command module, what is wrong, arguments with {name} for `files`, words of the message).
CASES = [
  ('train', 'missing config file', '--config configs/none.py --workdir {root}/w', 'no such config'),
  ('train', 'unknown config key', '--config configs/demo.py --workdir {root}/w --config.nokey=1',
   "no key 'nokey'"),
  ('train', 'config value of the wrong type',
   '--config configs/demo.py --workdir {root}/w --config.num_train_steps=many', 'invalid literal'),
  ('train', 'missing training images',
   '--config configs/demo.py --workdir {root}/w --config.data.root={root}/none', 'not a directory'),
  ('train', 'export over a user file',
   '--config configs/demo.py --workdir {root}/w --export_torch {user_pth}', '--overwrite_export'),
  ('train', 'workdir is a file', '--config configs/demo.py --workdir {user_file}', 'user.txt'),
  ('evaluate', 'missing results folder',
   '--score_only --davis_root {davis} --results_dir {root}/none --sequences seq', 'does not exist'),
  ('evaluate', 'missing DAVIS root',
   '--score_only --davis_root {root}/none --results_dir {wrong_size}', 'none'),
  ('evaluate', 'results of the wrong size',
   '--score_only --davis_root {davis} --results_dir {wrong_size} --sequences seq',
   'but its annotation is'),
  ('evaluate', 'results with unknown object ids',
   '--score_only --davis_root {davis} --results_dir {wrong_ids} --sequences seq', 'object id 3'),
  ('evaluate', 'results folder of other settings',
   '--config configs/davis2017_val.py --davis_root {davis} --results_dir {foreign_results} '
   '--sequences seq', 'another run'),
  ('evaluate', 'truncated checkpoint',
   '--config configs/davis2017_val.py --davis_root {davis} --results_dir {root}/r1 '
   '--sequences seq --checkpoint {truncated_pth}', 'cannot read checkpoint'),
  ('evaluate', 'checkpoint that is no checkpoint',
   '--config configs/davis2017_val.py --davis_root {davis} --results_dir {root}/r3 '
   '--sequences seq --checkpoint {user_file}', 'user.txt'),
  ('evaluate', 'unknown config key',
   '--config configs/davis2017_val.py --davis_root {davis} --results_dir {root}/r2 '
   '--config.eval.nokey=1', "no key 'nokey'"),
  ('evaluate', 'missing compared folder',
   '--score_only --davis_root {davis} --results_dir {wrong_ids} --sequences seq --report '
   '--compare {root}/none',
   'does not exist'),
  ('segment', 'missing video', '--video {root}/none.mp4 --mask {mask} --checkpoint {ckpt} '
   '--out {root}/s1', 'does not exist'),
  ('segment', 'truncated video', '--video {truncated_video} --mask {mask} --checkpoint {ckpt} '
   '--out {root}/s2', 'video'),
  ('segment', 'frame folder with a non-image', '--video {nonimage_frames} --mask {mask} '
   '--checkpoint {ckpt} --out {root}/s3 --slic_segments 30', '00003.jpg'),
  ('segment', 'mask of the wrong size', '--video {frames} --mask {small_mask} --checkpoint {ckpt} '
   '--out {root}/s4', '--resize_mask'),
  ('segment', 'colour (not indexed) mask', '--video {frames} --mask {colour_mask} '
   '--checkpoint {ckpt} --out {root}/s5', 'colour.png'),
  ('segment', 'empty mask', '--video {frames} --mask {empty_mask} --checkpoint {ckpt} '
   '--out {root}/s6', 'holds no object'),
  ('segment', 'corrupt checkpoint', '--video {frames} --mask {mask} --checkpoint {broken_ckpt} '
   '--out {root}/s7', 'does not load'),
  ('segment', 'truncated checkpoint', '--video {frames} --mask {mask} '
   '--checkpoint {truncated_pth} --out {root}/s8', 'does not load'),
  ('segment', 'output folder of a user', '--video {frames} --mask {mask} --checkpoint {ckpt} '
   '--out {user_dir}', '--overwrite'),
  ('segment', 'annotated frame past the end', '--video {frames} --mask {mask} --mask_frame 40 '
   '--checkpoint {ckpt} --out {root}/s9', 'no frame 40'),
  ('segment', 'both --mask and --masks', '--video {frames} --mask {mask} --masks {root} '
   '--checkpoint {ckpt} --out {root}/s10', 'mask'),
  ('segment', 'path through a file', '--video {user_file}/frames --mask {mask} '
   '--checkpoint {ckpt} --out {root}/s12', 'does not exist'),
  ('segment', 'mask that is no image', '--video {frames} --mask {user_file} --checkpoint {ckpt} '
   '--out {root}/s13', 'not a readable image'),
  ('segment', 'truncated mask', '--video {frames} --mask {truncated_mask} --checkpoint {ckpt} '
   '--out {root}/s14', 'truncated.png'),
  ('segment', 'mask path is a folder', '--video {frames} --mask {frames} --checkpoint {ckpt} '
   '--out {root}/s11', 'frames'),
  ('annotate', 'missing video', '--video {root}/none --out {root}/a.png', 'does not exist'),
  ('annotate', 'annotation over a user file', '--video {frames} --out {user_png}', '--overwrite'),
  ('annotate', 'output not a PNG', '--video {frames} --out {root}/a.jpg', '.png'),
  ('annotate', 'frame past the end', '--video {frames} --out {root}/a.png --frame 99', 'no frame'),
  ('annotate', 'truncated video', '--video {truncated_video} --out {root}/a.png', 'video'),
  ('pseudo_masks', 'missing image folder', '--images {root}/none --out {root}/p1',
   'not a directory'),
  ('pseudo_masks', 'folder with a non-image', '--images {nonimage_frames} --out {root}/p2',
   '00003.jpg'),
  ('pseudo_masks', 'unknown method parameter', '--images {stills} --out {root}/p3 --param nope=1',
   'nope'),
  ('pseudo_masks', 'output folder of a user', '--images {stills} --out {user_dir}', 'user_dir'),
  ('superpixels', 'missing DAVIS root', '--method slic --davis_root {root}/none --out {root}/x1 '
   '--sequences seq', 'none'),
  ('superpixels', 'unknown sequence', '--method slic --davis_root {davis} --out {root}/x2 '
   '--sequences nope', 'nope'),
  ('superpixels', 'output folder of a user', '--method slic --davis_root {davis} '
   '--out {user_dir} --sequences seq', 'user_dir'),
  ('parity', 'missing vectors', '--vectors {root}/none', 'none'),
  ('parity', 'vectors without their checkpoint', '--vectors {bad_npz}', 'checkpoint.pth'),
  ('convert', 'truncated checkpoint', '--src {truncated_pth} --dst {root}/c1', 'truncated.pth'),
  ('convert', 'missing source', '--src {root}/none.pth --dst {root}/c2', 'none.pth'),
  ('convert', 'output over a user file', '--src {ckpt} --dst {user_pth}', '--overwrite'),
]  # fmt: skip


def _run(module: str, args, timeout: int = 300, **kwargs):
  return subprocess.run(
    [sys.executable, '-m', f'shls_jax.tools.{module}', *map(str, args)],
    cwd=ROOT,
    env=dict(os.environ, JAX_PLATFORMS='cpu'),
    capture_output=True,
    text=True,
    timeout=timeout,
    **kwargs,
  )


# Log records a command prints while it runs (absl's, TensorFlow's C++ banner in train) and its
# progress bar, before an error mid-run.
_LOG_LINE = re.compile(r'([IWEF]\d{4} |WARNING: All log messages before absl|.*\d+%\|)')


def _one_error_line(done: subprocess.CompletedProcess) -> str:
  """The error line, checked to be the only line of stderr but log records, and the last, with a
  non-zero status."""
  lines = [line for line in done.stderr.splitlines() if line.strip()]
  assert done.returncode != 0, done.stdout[-2000:]
  assert 'Traceback' not in done.stderr, done.stderr[-3000:]
  others = [line for line in lines[:-1] if not _LOG_LINE.match(line)]
  assert lines and lines[-1].startswith('error: ') and not others, done.stderr[-3000:]
  return lines[-1]


def _ends_with_error(done: subprocess.CompletedProcess) -> str:
  """For a failure mid-run, after the progress bar: the last line of stderr, checked to be the
  only error, with no traceback and a non-zero status."""
  lines = [line for line in done.stderr.replace('\r', '\n').splitlines() if line.strip()]
  assert done.returncode != 0 and 'Traceback' not in done.stderr, done.stderr[-3000:]
  assert [line for line in lines if line.startswith('error: ')] == lines[-1:], done.stderr[-3000:]
  return lines[-1]


def _user_files(files) -> dict:
  return {
    path: path.read_bytes() for path in (files['user_file'], files['user_png'], files['user_pth'])
  } | {files['user_dir'] / 'notes.txt': b'a user note'}


@pytest.mark.parametrize(
  'module, wrong, args, words', CASES, ids=[f'{c[0]}: {c[1]}' for c in CASES]
)
def test_bad_input_is_one_line_and_changes_nothing(files, module, wrong, args, words):
  before = _user_files(files)
  text = args.format(**{k: str(v) for k, v in files.items()})
  line = _one_error_line(_run(module, text.split()))
  assert words in line, line
  for path, content in before.items():
    assert path.read_bytes() == content, f'{wrong}: {path} was changed'
  assert sorted(p.name for p in files['user_dir'].iterdir()) == ['notes.txt']


@pytest.mark.skipif(os.geteuid() == 0, reason='root reads files whatever their permissions')
def test_unreadable_inputs_are_one_line(files, tmp_path):
  locked = _write_frames(tmp_path / 'locked', _frames(2))
  mask = tmp_path / 'mask.png'
  mask.write_bytes(files['mask'].read_bytes())
  for path in (locked, mask):
    path.chmod(0)
  try:
    for args in (
      ['--video', locked, '--mask', files['mask']],
      ['--video', files['frames'], '--mask', mask],
    ):
      done = _run('segment', [*args, '--checkpoint', files['ckpt'], '--out', tmp_path / 'o'])
      assert 'ermission denied' in _one_error_line(done)
  finally:
    for path in (locked, mask):
      path.chmod(0o700)


_FULL_DISK = """
import errno, sys
from shls_jax.io import masks
written = []
def full(path, *args, **kwargs):
  if len(written) == 2:
    raise OSError(errno.ENOSPC, 'No space left on device', str(path))
  written.append(path)
  return write(path, *args, **kwargs)
write, masks.write_mask = masks.write_mask, full
from shls_jax.tools import segment
sys.argv = ['shls-segment'] + sys.argv[1:]
segment.run()
"""


def test_full_disk_is_one_line_and_leaves_nothing_that_looks_finished(files, tmp_path):
  out = tmp_path / 'out'
  done = subprocess.run(
    [sys.executable, '-c', _FULL_DISK, '--video', files['frames'], '--mask', files['mask'],
     '--checkpoint', files['ckpt'], '--out', out, '--slic_segments', '30'],
    cwd=ROOT, env=dict(os.environ, JAX_PLATFORMS='cpu'), capture_output=True, text=True,
    timeout=300,
  )  # fmt: skip
  line = _ends_with_error(done)
  assert 'No space left on device' in line, line
  assert not (out / 'masks').exists() and not (out / 'overlay.mp4').exists()
  # The leftovers carry temporary names, and a re-run takes the folder without --overwrite.
  assert all('.partial' in p.name for p in out.iterdir())
  again = _run(
    'segment',
    ['--video', files['frames'], '--mask', files['mask'], '--checkpoint', files['ckpt'],
     '--out', out, '--slic_segments', '30'],
  )  # fmt: skip
  assert again.returncode == 0, again.stderr[-3000:]
  assert len(list((out / 'masks').glob('*.png'))) == FRAMES


# `shls-segment` with Python's own SIGINT handler: a test run started in the background
# (`make test &`) ignores SIGINT, and a child inherits that, as a user's terminal never does.
_WITH_CTRL_C = """
import runpy, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)
sys.argv[0] = 'shls-segment'
runpy.run_module('shls_jax.tools.segment', run_name='__main__')
"""


def test_ctrl_c_mid_run_is_one_line_and_leaves_nothing_that_looks_finished(files, tmp_path):
  # Long enough that the signal lands mid-run (about 6 frames/s on a 2-core CPU).
  video = tmp_path / 'long.mp4'
  writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*'mp4v'), 10.0, (WIDTH, HEIGHT))
  for frame in np.tile(_frames(), (50, 1, 1, 1)):
    writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
  writer.release()
  out = tmp_path / 'out'
  process = subprocess.Popen(
    [sys.executable, '-c', _WITH_CTRL_C, '--video', str(video),
     '--mask', str(files['mask']), '--checkpoint', str(files['ckpt']), '--out', str(out),
     '--slic_segments', '30', '--mode', 'exact'],
    cwd=ROOT, env=dict(os.environ, JAX_PLATFORMS='cpu'), stdout=subprocess.PIPE,
    stderr=subprocess.PIPE, text=True,
  )  # fmt: skip
  deadline = time.monotonic() + 300
  partial = out / 'masks.partial'
  while not (partial.is_dir() and len(list(partial.glob('*.png'))) >= 1):
    assert process.poll() is None, process.communicate()[1][-3000:]
    assert time.monotonic() < deadline
    time.sleep(0.05)
  process.send_signal(signal.SIGINT)
  stdout, stderr = process.communicate(timeout=120)
  done = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
  assert _ends_with_error(done) == 'error: interrupted'
  assert not (out / 'masks').exists() and not (out / 'overlay.mp4').exists()
