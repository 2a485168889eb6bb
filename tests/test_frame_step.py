"""Fast mode's frame as one device step: the same masks as the host rules, nothing copied but the
frame in and the mask out, nothing compiled after the first frame."""

import jax
import numpy as np
import pytest

from shls_jax.inference import defaults as inference_defaults
from shls_jax.inference import frame_step
from shls_jax.inference.engine import Propagator
from shls_jax.inference.state import TRACE_COUNTS


def _config(frame_step_on: bool, canvas_sizes=None):
  config = inference_defaults.get_config()
  config.mode, config.memory = 'fast', 'device'
  config.superpixel_capacity = 64
  config.frame_step = frame_step_on
  if canvas_sizes:
    config.canvas_sizes = canvas_sizes
  return config


@pytest.fixture(scope='module')
def variables():
  from shls_jax.model import shls

  return shls.init_variables(jax.random.PRNGKey(0))


def _first_mask():
  first = np.zeros((48, 64), np.uint8)
  first[10:30, 20:40] = 3
  first[30:40, 5:15] = 1
  return first


def test_device_step_gives_the_host_rules_masks(noise_video, variables):
  frames, spx = noise_video(5)
  # One bucket larger than the frame: both paths decode on the whole (48, 64) frame, so that
  # the frame rules alone are compared (the canvases' own difference is measured in the README).
  host = Propagator(variables, _config(False, (64,))).run(frames, spx, _first_mask())
  engine = Propagator(variables, _config(True, (64,)))
  assert engine.uses_frame_step({})
  device = engine.run(frames, spx, _first_mask())
  np.testing.assert_array_equal(device.masks, host.masks)
  np.testing.assert_array_equal(device.presegs, host.presegs)
  # Streamed, the device step hands out the masks alone.
  streamed = list(engine.stream(zip(frames, spx), _first_mask()))
  np.testing.assert_array_equal(np.stack([r.mask for r in streamed]), host.masks)
  assert all(r.preseg is None and r.logodds is None for r in streamed[1:])


def test_steady_frames_copy_the_frame_in_and_the_mask_out(noise_video, variables, monkeypatch):
  frames, _ = noise_video(7)
  engine = Propagator(variables, _config(True), slic_segments=24)
  copies = {'in': 0, 'out': 0}
  device_put, device_get = jax.device_put, jax.device_get

  def counted_put(x, *args, **kwargs):
    copies['in'] += 1
    return device_put(x, *args, **kwargs)

  def counted_get(x):
    copies['out'] += 1
    return device_get(x)

  def run_video(video):
    stream = engine.stream(((frame, None) for frame in video), _first_mask())
    first = next(stream)  # frame 0: the host path, its copies and compilations
    copies.update({'in': 0, 'out': 0})
    traces = TRACE_COUNTS['frame_step']
    monkeypatch.setattr(jax, 'device_put', counted_put)
    monkeypatch.setattr(jax, 'device_get', counted_get)
    with jax.transfer_guard('disallow'):
      rest = list(stream)
    monkeypatch.undo()
    return [first] + rest, TRACE_COUNTS['frame_step'] - traces

  results, compiles = run_video(frames)
  # The observation once, the decoding once per canvas bucket the video used; none per frame.
  assert len(results) == 7 and compiles <= 1 + len(engine.canvases) and len(engine.canvases) < 6
  assert copies == {'in': 6, 'out': 6}, copies
  assert all(r.mask.dtype == np.uint8 and r.mask.shape == (48, 64) for r in results)
  assert set(np.unique(np.stack([r.mask for r in results]))) <= {0, 1, 3}
  # Once warm, the video runs again without compiling anything.
  _, compiles = run_video(frames)
  assert compiles == 0
  assert copies == {'in': 6, 'out': 6}, copies


def test_objects_joining_late_run_on_the_host_rules(variables):
  engine = Propagator(variables, _config(True))
  assert not engine.uses_frame_step({2: np.ones((4, 4), int)})


def test_host_superpixels_above_the_capacity_are_refused(noise_video, variables):
  frames, _ = noise_video(3)
  # 1-pixel superpixels: far more than the capacity of 64.
  spx = np.broadcast_to(np.arange(1, 48 * 64 + 1).reshape(48, 64), (3, 48, 64)).astype(np.int32)
  engine = Propagator(variables, _config(True))
  with pytest.raises(ValueError, match='exceed the capacity'):
    list(engine.stream(zip(frames, spx), _first_mask()))


def test_canvas_comes_from_the_newest_mask_with_room_to_move():
  sizes = inference_defaults.get_config().canvas_sizes
  mask = np.zeros((240, 432), np.uint8)
  mask[100:140, 200:260] = 7
  ids = np.array([0, 7])
  small = np.array([[0, 10, 0, 10]])
  # 40x60 widened by 0.25 per side: 60x90, in the 64x96 bucket.
  assert frame_step.canvas(mask, ids, small, 384, sizes) == (64, 96)
  # The minimum ROI size (frame 0's box) holds; a vanished object takes the whole frame, which
  # max_canvas scales to 213x384.
  assert frame_step.canvas(mask, ids, np.array([[0, 100, 0, 100]]), 384, sizes) == (128, 128)
  assert frame_step.canvas(mask, np.array([0, 3]), small, 384, sizes) == (224, 384)


def test_extents_too_large_for_the_canvas_are_scaled_into_it():
  extents = jax.numpy.array([[50, 80], [200, 100], [64, 64]])
  fitted = np.asarray(frame_step.fit_extents(extents, (64, 96)))
  np.testing.assert_array_equal(fitted, [[50, 80], [64, 32], [64, 64]])


def test_auto_superpixels_are_the_jax_slic_in_fast_mode_on_an_accelerator():
  from shls_jax import superpixels

  assert superpixels.resolve('auto', 'fast', accelerator=True) == 'slic-jax'
  assert superpixels.resolve('auto', 'fast', accelerator=False) == 'slic'
  assert superpixels.resolve('auto', 'exact', accelerator=True) == 'slic'
  assert superpixels.resolve('isec', 'fast', accelerator=True) == 'isec'
  with pytest.raises(ValueError, match='unknown superpixel source'):
    superpixels.resolve('slick', 'fast', accelerator=True)
