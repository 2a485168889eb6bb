"""Tests of the propagation engine: per-frame and whole-video parity with the reference, fast mode
against exact mode on a real DAVIS sequence, static crops and canvases, and input validation."""

import functools

import jax
import numpy as np
import pytest

from shls_jax.crops import object_crops, resample, static_crops
from shls_jax.inference import defaults as inference_defaults
from shls_jax.inference.engine import Propagator
from shls_jax.inference.state import TRACE_COUNTS
from shls_jax.ops import resize
from shls_jax.parity import pipeline as pipeline_parity
from shls_jax.parity import reference as parity

FAST_VS_EXACT_MIN_IOU = 0.95
NUM_FRAMES = 4
SIZE = (240, 427)


@pytest.fixture(scope='module')
def reference(parity_reference):
  return parity_reference


@pytest.fixture(scope='module')
def pipeline_results(reference):
  out = {}
  for group in pipeline_parity.STAGE_GROUPS:
    out.update(group(reference))
  return out


def test_pipeline_stages_reproduce_reference(reference, pipeline_results):
  assert {'pools.spx_merged0', 'pools.pools0', 'pools.pools1', 'frame1.pred', 'video.masks'} <= set(
    pipeline_results
  )
  failures = parity.failures(pipeline_results, reference.vectors)
  assert not failures, '\n'.join(failures)


def _config(mode, **overrides):
  config = inference_defaults.get_config()
  config.mode = mode
  config.update(overrides)
  return config


@pytest.fixture(scope='module')
def blackswan(davis_sample):
  from shls_jax import superpixels
  from shls_jax.data import davis

  seq = davis.load_sequence(davis_sample, 'blackswan')
  frames = davis.load_frames(seq, size=SIZE)[:NUM_FRAMES]
  mask = davis.load_masks(seq, indices=[0], size=SIZE, single_object=True)[0]
  spx = np.stack([superpixels.compute(f, n_segments=500) for f in frames])
  return frames, spx, mask


def _iou(a, b):
  union = np.count_nonzero((a > 0) | (b > 0))
  return np.count_nonzero((a > 0) & (b > 0)) / max(union, 1)


def _new_traces(before):
  return {k: v - before.get(k, 0) for k, v in TRACE_COUNTS.items() if v > before.get(k, 0)}


def test_fast_mode_follows_exact_mode_without_recompiling(reference, blackswan):
  frames, spx, mask = blackswan
  exact = Propagator(reference.variables, _config('exact')).run(frames, spx, mask)
  before = dict(TRACE_COUNTS)
  engine = Propagator(reference.variables, _config('fast'))
  fast = engine.run(frames, spx, mask)
  traced = _new_traces(before)
  # One embedding trace; at most one decoder trace per canvas bucket, not one per frame.
  assert set(traced) <= {'embed', 'decode'} and traced.get('embed', 0) <= 1, traced
  assert traced.get('decode', 0) <= len(engine.canvases), (traced, engine.canvases)
  np.testing.assert_array_equal(fast.masks[0], mask)
  assert set(np.unique(fast.masks)) <= {0, 1} and set(np.unique(exact.masks)) <= {0, 1}
  ious = [_iou(a, b) for a, b in zip(fast.masks[1:], exact.masks[1:])]
  assert np.mean(ious) >= FAST_VS_EXACT_MIN_IOU, ious

  # Another video of the same size compiles only for canvases the first one did not use.
  before = dict(TRACE_COUNTS)
  again = Propagator(reference.variables, _config('fast'))
  again.run(frames[::-1], spx[::-1], fast.masks[-1])
  new_canvases = set(again.canvases) - set(engine.canvases)
  assert _new_traces(before).get('decode', 0) <= len(new_canvases), again.canvases
  assert 'embed' not in _new_traces(before)


def _canvas_case(rng, frame_hw=(37, 53), l4_hw=(10, 14)):
  """Random (first, prev, cur) `CropSource`s of one object, with boxes of different sizes
  (full-frame attention maps)."""
  normal = lambda *shape: rng.normal(size=shape).astype(np.float32)
  source = object_crops.CropSource
  return (
    source(
      normal(*frame_hw, 5),
      normal(*l4_hw, 3),
      np.array([3, 30, 4, 40], np.int32),
      plane=(rng.random(frame_hw) > 0.5).astype(np.float32),
    ),
    source(
      normal(*frame_hw, 5),
      normal(*l4_hw, 3),
      np.array([5, 12, 9, 20], np.int32),
      plane=normal(*frame_hw),
      attention=normal(*frame_hw, 4),
    ),
    source(
      normal(*frame_hw, 5),
      normal(*l4_hw, 3),
      np.array([2, 17, 6, 29], np.int32),
      attention=normal(*frame_hw, 4),
    ),
  )


def test_canvas_holds_the_exact_inputs_and_zeros_elsewhere():
  first, prev, cur = _canvas_case(np.random.default_rng(2))
  own_box = lambda s: s._replace(attention=s.attention[s.box[0] : s.box[1], s.box[2] : s.box[3]])
  exact, pads = object_crops.object_inputs(first, own_box(prev), own_box(cur))
  # Jitted: eager dispatch of its many small ops takes seconds.
  canvas = jax.jit(functools.partial(static_crops.canvas_inputs, canvas=(24, 32)))(first, prev, cur)
  for name in object_crops.ObjectInputs._fields:
    want, got = np.asarray(getattr(exact, name)), np.array(getattr(canvas, name))
    hp, wp = want.shape[-3:-1]
    np.testing.assert_allclose(got[..., :hp, :wp, :], want, atol=1e-5, err_msg=name)
    got[..., :hp, :wp, :] = 0
    assert not got.any(), name
  logits = np.random.default_rng(3).normal(size=(24, 32, 2)).astype(np.float32)
  hp, wp = exact.l1.shape[1:3]
  np.testing.assert_array_equal(
    static_crops.paste_canvas(logits, cur.box, (37, 53)),
    object_crops.paste_back(logits[:hp, :wp], pads, cur.box, (37, 53)),
  )


def test_canvas_size_is_the_smallest_bucket_capped_at_the_frame():
  extents = static_crops.decode_extents(np.array([[0, 17, 3, 90], [1, 40, 0, 5]]), 0)
  np.testing.assert_array_equal(extents, [[17, 87], [39, 5]])
  assert static_crops.canvas_size(extents, (240, 427), (32, 48, 64, 96)) == (48, 96)
  assert static_crops.canvas_size(extents, (38, 90), (32, 48, 64, 96)) == (40, 92)
  assert static_crops.canvas_size(extents, (240, 427), (32,)) == (240, 428)
  with pytest.raises(ValueError, match='multiples'):
    static_crops.canvas_size(extents, (240, 427), (30,))


def test_decode_extents_scale_only_rois_longer_than_max_canvas():
  boxes = np.array([[0, 300, 10, 210], [5, 45, 0, 64], [0, 1, 0, 479]])
  np.testing.assert_array_equal(
    static_crops.decode_extents(boxes, 64), [[64, 43], [40, 64], [1, 64]]
  )


def test_downscaled_canvas_resamples_the_exact_inputs_and_pastes_back():
  first, prev, cur = _canvas_case(np.random.default_rng(4))
  extent = np.array([9, 13], np.int32)  # The current ROI is 15 x 23.
  resized = lambda x, box: np.asarray(
    resize.resize_bilinear(x[box[0] : box[1], box[2] : box[3]], tuple(extent))
  )
  inputs = jax.jit(functools.partial(static_crops.canvas_inputs, canvas=(16, 16)))(
    first, prev, cur, extent=extent
  )
  # Padded to 12 x 16: one zero row above, two below, one column left, two right.
  np.testing.assert_allclose(inputs.l1[1, 1:10, 1:14], resized(cur.l1, cur.box), atol=1e-5)
  np.testing.assert_allclose(
    inputs.attention[0, 1:10, 1:14], resized(prev.attention, prev.box), atol=1e-5
  )
  assert not np.asarray(inputs.l1[:, 10:]).any() and not np.asarray(inputs.l4[:, 3:]).any()
  np.testing.assert_allclose(
    inputs.first_l4[:3, :4],
    resample.roi_align(first.l4, first.box, (3, 4), object_crops.L4_SCALE),
    atol=1e-5,
  )
  logits = np.random.default_rng(5).normal(size=(16, 16, 2)).astype(np.float32)
  box = cur.box
  pasted = np.asarray(static_crops.paste_canvas(logits, box, (37, 53), extent))
  np.testing.assert_allclose(
    pasted[box[0] : box[1], box[2] : box[3]],
    resize.resize_bilinear(logits[1:10, 1:14], (box[1] - box[0], box[3] - box[2])),
    atol=1e-5,
  )


def test_static_crop_of_box_sized_output_is_the_exact_crop():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(20, 30, 3)).astype(np.float32)
  box = np.array([3, 15, 5, 25], np.int32)
  crop = static_crops.sample_bilinear(x, box, (12, 20))
  np.testing.assert_allclose(crop, x[3:15, 5:25], atol=1e-6)
  np.testing.assert_array_equal(static_crops.sample_nearest(x, box, (12, 20)), x[3:15, 5:25])
  logits = rng.normal(size=(12, 20, 2)).astype(np.float32)
  np.testing.assert_allclose(
    static_crops.paste(logits, box, (20, 30)),
    object_crops.paste_back(logits, ((0, 0), (0, 0)), box, (20, 30)),
    atol=1e-5,
  )


def test_static_crop_resamples_like_align_corners_false():
  x = np.random.default_rng(1).normal(size=(20, 30, 2)).astype(np.float32)
  box = np.array([2, 17, 4, 29], np.int32)
  np.testing.assert_allclose(
    static_crops.sample_bilinear(x, box, (8, 12)),
    resize.resize_bilinear(x[2:17, 4:29], (8, 12)),
    atol=1e-5,
  )


def _small_video(t=2, h=8, w=12):
  frames = np.zeros((t, h, w, 3), np.uint8)
  spx = np.tile((np.arange(h * w).reshape(h, w) // 8 + 1).astype(np.int32), (t, 1, 1))
  return frames, spx


def test_empty_first_mask_gives_background(reference):
  frames, spx = _small_video()
  result = Propagator(reference.variables, _config('exact')).run(
    frames, spx, np.zeros(spx.shape[1:], np.uint8)
  )
  assert result.masks.shape == spx.shape and not result.masks.any()
  assert (result.presegs == 1).all()


@pytest.mark.parametrize(
  'change, message',
  [
    (lambda f, s, m: (f, s[:, :-1], m), 'do not match the frames'),
    (lambda f, s, m: (f, s, m[:-1]), 'does not match the frame size'),
    (lambda f, s, m: (f, s * 2, m), 'not dense'),
    (lambda f, s, m: (f.astype(np.float32), s, m), 'uint8'),
    (lambda f, s, m: (f, s, m + 255), 'void'),
  ],
)
def test_bad_input_is_refused(reference, change, message):
  frames, spx = _small_video()
  mask = np.zeros(spx.shape[1:], np.uint8)
  mask[2:5, 3:7] = 1
  engine = Propagator(reference.variables, _config('exact'))
  with pytest.raises(ValueError, match=message):
    engine.run(*change(frames, spx, mask))


def test_unknown_mode_is_refused(reference):
  with pytest.raises(ValueError, match='mode'):
    Propagator(reference.variables, _config('fastest'))


def test_streaming_equals_the_whole_video_run(noise_video):
  from shls_jax.model import shls

  frames, spx = noise_video(5)
  first = np.zeros((48, 64), np.uint8)
  first[10:30, 20:40] = 3
  first[30:40, 5:15] = 1
  engine = Propagator(
    shls.init_variables(jax.random.PRNGKey(0)), _config('fast', superpixel_capacity=64)
  )
  whole = engine.run(frames, spx, first)
  # A generator: the stream never sees the video as a whole.
  streamed = list(engine.stream(((frames[t], spx[t]) for t in range(5)), first))
  assert len(streamed) == 5
  np.testing.assert_array_equal(np.stack([r.mask for r in streamed]), whole.masks)
  np.testing.assert_array_equal(np.stack([r.preseg for r in streamed]), whole.presegs)
  assert set(np.unique(whole.masks)) <= {0, 1, 3}
  with pytest.raises(ValueError, match='no frame'):
    next(engine.stream(iter(()), first))


def _late_object_video(noise_video):
  frames, spx = noise_video(6)
  first = np.zeros((48, 64), np.uint8)
  first[10:30, 20:40] = 3
  first[2:8, 50:60] = 5
  # Small and off the 8x8 superpixel grid: it only has superpixels once merged with its mask.
  late = np.zeros((48, 64), np.uint8)
  late[35:45, 3:9] = 1
  return frames, spx, first, late


@pytest.mark.parametrize('mode, memory', [('fast', 'faiss'), ('exact', 'device')])
def test_late_object_joins_and_earlier_objects_keep_going(noise_video, mode, memory):
  from shls_jax.model import shls

  frames, spx, first, late = _late_object_video(noise_video)
  engine = Propagator(
    shls.init_variables(jax.random.PRNGKey(0)),
    _config(mode, memory=memory, superpixel_capacity=64, keep_logodds=True),
  )
  plain = engine.run(frames, spx, first)
  joined = engine.run(frames, spx, first, later_masks={2: late})
  # Nothing changes before the object appears.
  np.testing.assert_array_equal(joined.masks[:2], plain.masks[:2])
  # Its given mask is the output of its first frame, and it is tracked from then on.
  np.testing.assert_array_equal(joined.masks[2][late > 0], 1)
  assert not np.any(joined.masks[:2] == 1)
  assert set(np.unique(joined.masks)) <= {0, 1, 3, 5}
  assert joined.logodds.shape == (6, 48, 64, 4)
  # A first mask without objects: background until the first given object, then frame 0 there.
  empty = engine.run(frames, spx, np.zeros_like(first), later_masks={3: late})
  assert not np.any(empty.masks[:3]) and np.array_equal(empty.masks[3], late)


def test_fast_mode_decodes_late_objects_in_their_own_batch(noise_video):
  from shls_jax.model import shls

  frames, spx, first, late = _late_object_video(noise_video)
  variables = shls.init_variables(jax.random.PRNGKey(0))
  # Every multiple of 4 a canvas side: canvases equal the padded ROIs, so fast ~ exact (random
  # weights leave near ties: measured 0.998..1.0 of the pixels agree per frame, as without late
  # objects).
  sides = tuple(range(4, 68, 4))
  fast = Propagator(variables, _config('fast', superpixel_capacity=64, canvas_sizes=sides))
  exact = Propagator(variables, _config('exact', superpixel_capacity=64))
  later = {2: late}
  traces = TRACE_COUNTS['decode']
  masks = fast.run(frames, spx, first, later).masks
  # Both batches (2 objects, 1 object) compiled once per canvas, never per frame.
  assert TRACE_COUNTS['decode'] - traces <= 2 * len(fast.canvases) + 1
  again = TRACE_COUNTS['decode']
  fast.run(frames, spx, first, later)
  assert TRACE_COUNTS['decode'] == again
  agreement = np.mean(masks == exact.run(frames, spx, first, later).masks, axis=(1, 2))
  assert np.min(agreement) > 0.99, agreement


@pytest.mark.parametrize(
  'later, match',
  [
    ({0: np.zeros((48, 64), np.uint8)}, 'frame indices'),
    ({9: np.zeros((48, 64), np.uint8)}, 'frame indices'),
    ({2: np.zeros((40, 64), np.uint8)}, r'must be \[H, W\]'),
    ({2: np.full((48, 64), 255, np.uint8)}, 'ids must lie'),
  ],
)
def test_bad_later_masks_are_refused(reference, noise_video, later, match):
  frames, spx, first, _ = _late_object_video(noise_video)
  engine = Propagator(reference.variables, _config('exact'))
  with pytest.raises(ValueError, match=match):
    engine.run(frames, spx, first, later)
