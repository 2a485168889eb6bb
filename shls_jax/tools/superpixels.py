r"""Precomputes superpixel label maps for a DAVIS dataset into `<out>/<sequence>/<frame>.png`.

  shls-superpixels --method isec --davis_root DAVIS --out DAVIS/superpixels/isec \
      [--split val | --sequences blackswan,dog] [--workers 4] [--overwrite]

Frames are processed in parallel (one process per worker). Runs are resumable: a valid map that is
already there is kept, and nothing is ever replaced without --overwrite. `<out>/settings.json`
records the method and its parameters, so maps of another method are never mixed into a folder.
"""

import concurrent.futures
import dataclasses
import json
import multiprocessing
import sys
from pathlib import Path

import cv2
from absl import app, flags
from tqdm import tqdm

from shls_jax import superpixels
from shls_jax.data import davis
from shls_jax.io import frames as frame_io
from shls_jax.tools import cli

FLAGS = flags.FLAGS
_SETTINGS = 'settings.json'


@dataclasses.dataclass(frozen=True)
class Job:
  """One frame to segment: its JPEG, its label map, and how to compute it."""

  frame: Path
  output: Path
  method: str
  params: tuple[tuple[str, object], ...]
  overwrite: bool


def _init_worker() -> None:
  # One OpenCV thread per process: the pool already uses every core.
  cv2.setNumThreads(1)


def run_job(job: Job) -> bool:
  """Writes the label map of `job` unless a valid one exists; True when it wrote one."""
  image = frame_io.read_frame(job.frame)
  if job.output.exists() and not job.overwrite:
    try:
      superpixels.read_labels(job.output, image.shape[:2])
    except ValueError as err:
      raise ValueError(f'{err}; rerun with --overwrite to replace it') from None
    return False
  labels = superpixels.compute(image, job.method, **dict(job.params))
  superpixels.write_labels(job.output, labels)
  return True


def _check_settings(out: Path, settings: dict, overwrite: bool) -> None:
  """Refuses to add maps to a folder holding another method's maps, or files of no run of this
  command (unless overwriting)."""
  path = out / _SETTINGS
  if not path.is_file() and out.is_dir() and any(out.iterdir()) and not overwrite:
    raise FileExistsError(
      f'{out} holds files but no {_SETTINGS}: choose another --out or pass --overwrite'
    )
  if path.is_file() and not overwrite:
    previous = json.loads(path.read_text())
    if previous != settings:
      raise ValueError(
        f'{out} holds superpixels made with {previous}, not {settings}: choose '
        'another --out or pass --overwrite'
      )
  out.mkdir(parents=True, exist_ok=True)
  path.write_text(json.dumps(settings, indent=2, sort_keys=True) + '\n')


def list_jobs(
  davis_root,
  out,
  method: str,
  params: dict,
  *,
  split: str | None = None,
  sequences: list[str] | None = None,
  max_frames: int | None = None,
  overwrite: bool = False,
) -> list[Job]:
  """Jobs for every frame of the chosen sequences (all of JPEGImages/480p by default).

  Args:
    davis_root: DAVIS root folder.
    out: output root; maps go to `<out>/<sequence>/<frame stem>.png`.
    method: 'slic' or 'isec'.
    params: keyword arguments of the method.
    split: a split name (e.g. 'val') or the path of a split file.
    sequences: explicit sequence names (instead of a split).
    max_frames: keep only the first `max_frames` frames of each sequence.
    overwrite: recompute maps that already exist.
  """
  if method not in superpixels.METHODS:
    raise ValueError(f'unknown superpixel method {method!r}: expected one of {superpixels.METHODS}')
  if sequences is None:
    if split is not None and Path(split).is_file():
      sequences = davis.read_split_file(Path(split))
    else:
      sequences = davis.list_sequences(davis_root, split)
  if not sequences:
    raise ValueError(f'no sequences to process under {davis_root}')
  items = tuple(sorted(params.items()))
  jobs = []
  for name in sequences:
    frames = davis.frame_paths(davis_root, name)[:max_frames]
    jobs += [
      Job(f, superpixels.label_path(out, name, f.stem), method, items, overwrite) for f in frames
    ]
  return jobs


def precompute(jobs: list[Job], workers: int = 1) -> tuple[int, int]:
  """Runs `jobs` on `workers` processes with a progress bar; returns (written, kept)."""
  if workers < 1:
    raise ValueError(f'--workers must be >= 1, got {workers}')
  progress = tqdm(total=len(jobs), unit='frame', desc='superpixels')
  written = 0
  if workers == 1:
    for job in jobs:
      written += run_job(job)
      progress.update()
  else:
    # Spawned, not forked: the caller may hold threads (JAX, OpenCV) that a fork would copy
    # mid-operation.
    context = multiprocessing.get_context('spawn')
    with concurrent.futures.ProcessPoolExecutor(
      workers, mp_context=context, initializer=_init_worker
    ) as pool:
      for done in pool.map(run_job, jobs, chunksize=4):
        written += done
        progress.update()
  progress.close()
  return written, len(jobs) - written


def define_flags() -> None:
  flags.DEFINE_enum('method', None, superpixels.METHODS, 'Superpixel method.')
  flags.DEFINE_string('davis_root', None, 'DAVIS root folder.')
  flags.DEFINE_string('out', None, 'Output root folder.')
  flags.DEFINE_string('split', None, "Split name (e.g. 'val') or split file path.")
  flags.DEFINE_list('sequences', None, 'Sequence names (instead of --split).')
  flags.DEFINE_integer('workers', 1, 'Parallel processes.')
  flags.DEFINE_integer('max_frames', None, 'Only the first N frames of each sequence.')
  flags.DEFINE_integer('slic_segments', None, 'SLIC only: about this many superpixels (300).')
  flags.DEFINE_bool('overwrite', False, 'Recompute existing maps.')
  flags.mark_flags_as_required(['method', 'davis_root', 'out'])


def main(argv) -> None:
  cli.check_no_arguments(argv)
  if FLAGS.split and FLAGS.sequences:
    raise app.UsageError('give --split or --sequences, not both')
  if FLAGS.slic_segments is not None and FLAGS.method != 'slic':
    raise app.UsageError('--slic_segments only applies to --method slic')
  if FLAGS.max_frames is not None and FLAGS.max_frames < 1:
    raise app.UsageError('--max_frames must be >= 1')
  params = {} if FLAGS.slic_segments is None else {'n_segments': FLAGS.slic_segments}
  out = Path(FLAGS.out)
  jobs = list_jobs(
    Path(FLAGS.davis_root),
    out,
    FLAGS.method,
    params,
    split=FLAGS.split,
    sequences=FLAGS.sequences,
    max_frames=FLAGS.max_frames,
    overwrite=FLAGS.overwrite,
  )
  _check_settings(out, {'method': FLAGS.method, 'params': params}, FLAGS.overwrite)
  written, kept = precompute(jobs, FLAGS.workers)
  print(f'{written} label maps written, {kept} already present, under {out}')


def run() -> None:
  cli.run(main, define_flags, __name__)


if __name__ == '__main__':
  sys.exit(run())
