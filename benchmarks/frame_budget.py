"""Where a fast-mode frame's time goes once it runs as one device step, and what bounds its rate.

  python benchmarks/frame_budget.py [--size=480,854] [--objects=1] [--frames=12] \
      [--slic_segments=1000] [--checkpoint=CKPT] [--e2e_size=240,432] [--e2e_frames=50] \
      [--video=FRAMES_DIR --mask=first.png] [--json=frame_budget.json]

On a generated clip (`data.synthetic.make_video`, `--objects` objects) at `--size`, with the JAX
SLIC and the device memory (random weights unless `--checkpoint`; speed does not depend on
them), per steady-state frame (frames 2.., after a warm-up video of the same size):

  host ms: what the host does per frame while the device waits for it: choosing the canvas,
    copying the frame in, launching the step, starting the mask's copy out (reading, resizing
    and writing run on threads beside the engine, off this path); timed with the device idle at
    each launch, as on an accelerator whose host cores are free (on a CPU backend the launches
    inside the stream share the cores with the running step: printed too);
  device ms: the compiled step alone on ready inputs (best of 3);
  copies per frame (host to device and back) and compilations after the warm-up;
  FLOPs and bytes of the step from XLA's cost analysis.

From these, the projected H200 bound in frames/s: min(FLOP-bound at TF32 and at bf16 dense
peak, byte-bound at HBM bandwidth, 1000 / host ms); the peak figures are printed. Then CPU
end-to-end frames/s of `shls-segment` on the same frames at `--e2e_size`: the old path (faiss
memory, host frame rules, scikit-image SLIC) against the new (device step, `--superpixels auto`,
i.e. scikit-image's SLIC on worker threads on a CPU) and the new with the JAX SLIC inside the
step, as subprocesses timed by the command's own frames/s (reading, compilation and writing
included).
"""

import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import jax
import numpy as np
from absl import app, flags

from shls_jax import checkpoints
from shls_jax.data import synthetic
from shls_jax.inference import defaults, frame_step
from shls_jax.inference.engine import Propagator
from shls_jax.inference.state import TRACE_COUNTS
from shls_jax.io import masks as mask_io
from shls_jax.model import shls
from shls_jax.tools import cli

FLAGS = flags.FLAGS

# NVIDIA H200 SXM: dense TF32 and bf16 tensor-core peaks, HBM3e bandwidth (datasheet).
H200_TF32_FLOPS = 494e12
H200_BF16_FLOPS = 989e12
H200_BYTES_PER_S = 4.8e12


def _config(slic_segments: int):
  config = defaults.get_config()
  config.mode, config.memory = 'fast', 'device'
  config.superpixel_capacity = 2 * slic_segments
  return config


def _clip(size, frames: int, objects: int, seed: int = 0):
  return synthetic.make_video(np.random.default_rng(seed), *size, frames, objects)


class _Counted:
  """jax.device_put / device_get wrapped to count the engine's copies."""

  def __init__(self):
    self.copies = 0
    self.put, self.get = jax.device_put, jax.device_get

  def __enter__(self):
    def put(*args, **kwargs):
      self.copies += 1
      return self.put(*args, **kwargs)

    def get(*args, **kwargs):
      self.copies += 1
      return self.get(*args, **kwargs)

    jax.device_put, jax.device_get = put, get
    return self

  def __exit__(self, *exc):
    jax.device_put, jax.device_get = self.put, self.get


def idle_launches(engine, variables, video, first, objects: int) -> np.ndarray:
  """Seconds of host work per frame with the device idle at each launch: the engine's loop body
  (`frame_step.launch`, then the mask's copy out started) after waiting for the previous frame,
  on the engine's last video state (twice, the second timed, so that no launch compiles)."""
  variables = jax.device_put(variables)
  first_state, start_carry, settings = engine.device_step_state
  ids = np.arange(objects + 1)
  min_boxes = np.asarray(start_carry.memory.initial_boxes)
  for _ in range(2):
    carry, newest, seconds = start_carry, first, []
    for frame in video[1:]:
      jax.block_until_ready(carry)
      start = time.perf_counter()
      _, carry, mask, _ = frame_step.launch(
        variables, first_state, carry, frame, None, newest, ids, min_boxes, settings
      )
      mask.copy_to_host_async()
      seconds.append(time.perf_counter() - start)
      newest = jax.device_get(mask)
  return np.asarray(seconds)


def engine_figures(variables, size, frames: int, objects: int, slic_segments: int) -> dict:
  """Host ms, device ms, copies, compilations, FLOPs and bytes of the frame step on a generated
  clip of `frames` frames at `size` with `objects` objects, the JAX SLIC at `slic_segments`."""
  video, masks = _clip(size, frames, objects)
  engine = Propagator(variables, _config(slic_segments), slic_segments=slic_segments)

  def run(clip, first):
    """(host seconds of each frame's launch, copies, frames) of the frames after the first."""
    stream = engine.stream(((f, None) for f in clip), first)
    next(stream)
    engine.timings['frame_step'] = 0.0
    launches, before = [], 0.0
    with _Counted() as counted:
      for _ in stream:
        # Each frame handed out is one loop of the engine, which launched one frame.
        launches.append(engine.timings['frame_step'] - before)
        before = engine.timings['frame_step']
    return np.asarray(launches), counted.copies, len(launches)

  run(video[::-1], masks[-1])  # warm-up: compiles the step
  traces = TRACE_COUNTS['frame_step']
  start = time.perf_counter()
  launches, copies, count = run(video, masks[0])
  wall = time.perf_counter() - start
  compiles = TRACE_COUNTS['frame_step'] - traces

  # The step alone on ready inputs, and XLA's account of it.
  probe = engine.stream(((f, None) for f in video[:2]), masks[0])
  next(probe)
  first_state, carry, settings = engine.device_step_state
  idle = idle_launches(engine, variables, video, masks[0], objects)
  settings = settings._replace(canvas=max(engine.canvases, key=engine.canvases.get))
  frame = jax.device_put(video[1])
  seen = frame_step.observe_jit(variables, carry, frame, None, settings._replace(canvas=(0, 0)))
  cost = {}
  for lowered in (
    frame_step.observe_jit.lower(variables, carry, frame, None, settings._replace(canvas=(0, 0))),
    frame_step.decide_jit.lower(variables, first_state, carry, seen, settings),
  ):
    analysis = lowered.compile().cost_analysis()
    analysis = analysis[0] if isinstance(analysis, (list, tuple)) else analysis
    for key in ('flops', 'bytes accessed'):
      cost[key] = cost.get(key, 0.0) + float(analysis.get(key, 0.0))
  device_s = []
  for _ in range(3):
    start = time.perf_counter()
    jax.block_until_ready(frame_step.step(variables, first_state, carry, frame, None, settings))
    device_s.append(time.perf_counter() - start)
  return {
    # With the device idle at each launch: what an accelerator waits for (on a CPU backend the
    # launches inside the stream share the cores with the step itself).
    'host_ms_per_frame': 1000 * float(np.median(idle)),
    # Inside the stream, the median: a frame that met a new canvas bucket compiles.
    'host_ms_per_frame_in_stream': 1000 * float(np.median(launches)),
    'host_ms_per_frame_max': 1000 * float(np.max(launches)),
    'device_ms_per_frame': 1000 * min(device_s),
    'copies_per_frame': copies / count,
    'compiles_after_warmup': compiles,
    'flops_per_frame': float(cost.get('flops', 0.0)),
    'bytes_per_frame': float(cost.get('bytes accessed', 0.0)),
    'cpu_engine_fps': count / wall,
  }


def h200_bounds(figures: dict) -> dict[str, float]:
  """Frames/s that each H200 limit allows for the step's FLOPs, bytes and host ms."""
  flops, moved = figures['flops_per_frame'], figures['bytes_per_frame']
  return {
    'TF32 peak (494 TFLOP/s)': H200_TF32_FLOPS / max(flops, 1.0),
    'bf16 peak (989 TFLOP/s)': H200_BF16_FLOPS / max(flops, 1.0),
    'HBM (4.8 TB/s)': H200_BYTES_PER_S / max(moved, 1.0),
    'host (1000 / host ms)': 1000 / max(figures['host_ms_per_frame'], 1e-9),
  }


def _write_clip(folder: Path, size, frames: int) -> tuple[Path, Path]:
  video, masks = _clip(size, frames, FLAGS.objects, seed=1)
  frame_dir = folder / 'frames'
  frame_dir.mkdir(parents=True)
  for t, frame in enumerate(video):
    cv2.imwrite(str(frame_dir / f'{t:05d}.jpg'), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
  mask_io.write_mask(folder / 'first.png', masks[0])
  return frame_dir, folder / 'first.png'


def segment_fps(checkpoint: Path, video: Path, mask: Path, size, out: Path, path: str) -> float:
  """frames/s printed by `shls-segment` on the old or new path."""
  args = {
    'old': ['--memory=faiss', '--superpixels=slic'],
    'new': ['--memory=device', '--superpixels=auto'],
    'new_slic_jax': ['--memory=device', '--superpixels=slic-jax'],
  }[path]
  command = [
    sys.executable,
    '-m',
    'shls_jax.tools.segment',
    f'--video={video}',
    f'--mask={mask}',
    f'--checkpoint={checkpoint}',
    f'--out={out}',
    f'--size={size[0]},{size[1]}',
    '--mode=fast',
    f'--slic_segments={FLAGS.slic_segments // 2}',
    '--resize_mask',
    *args,
  ]
  done = subprocess.run(command, capture_output=True, text=True, check=False)
  found = re.search(r'([0-9.]+) frames/s', done.stdout)
  if done.returncode or not found:
    raise RuntimeError(f'segment ({path}) failed: {done.stderr.strip()[-2000:]}')
  return float(found.group(1))


def main(argv) -> None:
  cli.check_no_arguments(argv)
  size = cli.size_flag(FLAGS.size, 'size')
  variables = (
    checkpoints.load_variables(FLAGS.checkpoint)
    if FLAGS.checkpoint
    else shls.init_variables(jax.random.PRNGKey(0))
  )
  figures = engine_figures(variables, size, FLAGS.frames, FLAGS.objects, FLAGS.slic_segments)
  flops, moved, host = (
    figures['flops_per_frame'],
    figures['bytes_per_frame'],
    figures['host_ms_per_frame'],
  )
  bounds = h200_bounds(figures)
  figures['h200_fps_bound'] = min(
    bounds['TF32 peak (494 TFLOP/s)'], bounds['HBM (4.8 TB/s)'], bounds['host (1000 / host ms)']
  )

  if FLAGS.e2e_size:
    e2e = cli.size_flag(FLAGS.e2e_size, 'e2e_size')
    with tempfile.TemporaryDirectory() as tmp:
      tmp = Path(tmp)
      checkpoint = Path(FLAGS.checkpoint) if FLAGS.checkpoint else tmp / 'ckpt'
      if not FLAGS.checkpoint:
        checkpoints.save_variables(checkpoint, variables)
      if FLAGS.video:
        video, mask = Path(FLAGS.video), Path(FLAGS.mask)
      else:
        video, mask = _write_clip(tmp / 'clip', e2e, FLAGS.e2e_frames)
      for path in ('old', 'new', 'new_slic_jax'):
        figures[f'cpu_fps_{path}'] = segment_fps(checkpoint, video, mask, e2e, tmp / path, path)

  h, w = size
  print(f'\nFrame budget, fast mode, {h}x{w}, {FLAGS.objects} object(s), {jax.devices()[0]}')
  print('| figure | value |\n|---|---|')
  print(f'| host ms per frame (the device waits for it; device idle at launch) | {host:.2f} |')
  print(
    f'| host ms per frame inside the stream, median | {figures["host_ms_per_frame_in_stream"]:.2f} |'
  )
  print(
    f'| host ms per frame, largest (a frame that compiled) | {figures["host_ms_per_frame_max"]:.0f} |'
  )
  print(f'| device ms per frame (this backend) | {figures["device_ms_per_frame"]:.1f} |')
  print(f'| copies per frame | {figures["copies_per_frame"]:.1f} |')
  print(f'| compilations after warm-up | {figures["compiles_after_warmup"]} |')
  print(f'| GFLOP per frame | {flops / 1e9:.1f} |')
  print(f'| GB accessed per frame | {moved / 1e9:.2f} |')
  print(f'| engine frames/s on this backend | {figures["cpu_engine_fps"]:.2f} |')
  for name, fps in bounds.items():
    print(f'| H200 bound, {name} | {fps:.0f} frames/s |')
  print(f'| projected H200 frames/s (min of TF32, HBM, host) | {figures["h200_fps_bound"]:.0f} |')
  if 'cpu_fps_new' in figures:
    rows = (
      (
        f'old at {FLAGS.e2e_size[0]}x{FLAGS.e2e_size[1]}: faiss memory, host rules, host SLIC',
        'old',
      ),
      ('new: the device step, superpixels auto', 'new'),
      ('new with the JAX SLIC inside the step', 'new_slic_jax'),
    )
    for label, key in rows:
      fps = figures[f'cpu_fps_{key}']
      print(f'| segment frames/s, {label} | {fps:.2f} ({fps / figures["cpu_fps_old"]:.2f}x) |')
  if FLAGS.json:
    Path(FLAGS.json).write_text(json.dumps(figures, indent=2))


if __name__ == '__main__':
  # Defined here only: device_check.py imports this module beside its own flags.
  flags.DEFINE_list('size', ['480', '854'], 'frame height and width, H,W')
  flags.DEFINE_integer('objects', 1, 'objects in the clip')
  flags.DEFINE_integer('frames', 12, 'frames of the timed clip')
  flags.DEFINE_integer('slic_segments', 1000, 'JAX SLIC segments per frame')
  flags.DEFINE_string('checkpoint', None, 'weights (default: random, as speed does not need them)')
  flags.DEFINE_list('e2e_size', ['240', '432'], 'size of the end-to-end runs; empty to skip them')
  flags.DEFINE_integer('e2e_frames', 50, 'frames of the end-to-end clip')
  flags.DEFINE_string('video', None, 'frame folder for the end-to-end runs (default: generated)')
  flags.DEFINE_string('mask', None, 'first-frame mask of --video')
  flags.DEFINE_string('json', None, 'write the figures here')
  app.run(main)
