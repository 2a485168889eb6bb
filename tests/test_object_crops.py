"""Tests of shls_jax.crops.object_crops against the decoder inputs recorded in the parity vectors.

The current frame's own features come from the network, so they are zeros here and only the
parts of the recorded inputs that do not depend on them are compared.
"""

import numpy as np
import pytest

from shls_jax.crops import object_crops

NUM_OBJECTS = 2


def _rel(ours, ref):
  ours, ref = np.asarray(ours), np.asarray(ref)
  assert ours.shape == ref.shape
  return float(np.abs(ours - ref).max() / max(np.abs(ref).max(), 1e-6))


def _nhwc(x):
  return np.moveaxis(np.asarray(x), -3, -1)


@pytest.fixture(scope='module')
def crops(parity_vectors):
  """(ObjectInputs, pads) of frames 1 and 2 for every object, keyed (frame, k)."""
  v = parity_vectors
  l1 = _nhwc(v['embed.feat_l1'][0])
  l4 = _nhwc(v['embed.feat_l4'][0])
  zeros_l1, zeros_l4 = np.zeros_like(l1), np.zeros_like(l4)
  out = {}
  for frame in (1, 2):
    for k in range(NUM_OBJECTS):
      first_mask = (v['label'][0] == k + 2).astype(np.float32)
      prev_logits = first_mask if frame == 1 else v[f'frame{frame - 1}.pred'][0, k + 1]
      out[frame, k] = object_crops.object_inputs(
        object_crops.CropSource(l1, l4, v['frame0.bbox'][k], plane=first_mask),
        # At frame 1 the previous frame is frame 0, whose features are the first ones.
        object_crops.CropSource(
          l1 if frame == 1 else zeros_l1,
          l4 if frame == 1 else zeros_l4,
          v[f'frame{frame - 1}.bbox'][k],
          plane=prev_logits,
          attention=_nhwc(v[f'frame{frame - 1}.attmap{k}']),
        ),
        object_crops.CropSource(
          zeros_l1,
          zeros_l4,
          v[f'frame{frame}.bbox'][k],
          attention=_nhwc(v[f'frame{frame}.attmap{k}']),
        ),
      )
  return out


@pytest.mark.parametrize('frame', [1, 2])
@pytest.mark.parametrize('k', range(NUM_OBJECTS))
def test_attention_inputs(crops, parity_vectors, frame, k):
  inputs, _ = crops[frame, k]
  prefix = f'frame{frame}'
  assert _rel(inputs.attention, _nhwc(parity_vectors[f'{prefix}.mem_select{k}.in0'])) < 1e-4
  assert (
    _rel(inputs.decoder_attention, _nhwc(parity_vectors[f'{prefix}.segmenter{k}.in2'][0])) < 1e-4
  )


@pytest.mark.parametrize('frame', [1, 2])
@pytest.mark.parametrize('k', range(NUM_OBJECTS))
def test_decoder_l1_and_first_l4(crops, parity_vectors, frame, k):
  inputs, _ = crops[frame, k]
  ref_l1 = _nhwc(parity_vectors[f'frame{frame}.segmenter{k}.in0'][0])
  np.testing.assert_array_equal(inputs.decoder_l1[..., 0], ref_l1[..., 0])
  assert _rel(inputs.decoder_l1[..., 1], ref_l1[..., 1]) < 1e-4
  assert _rel(inputs.decoder_l1[..., 2:], ref_l1[..., 2:]) < 1e-4
  ref_l4 = _nhwc(parity_vectors[f'frame{frame}.segmenter{k}.in1'][0])
  assert _rel(inputs.first_l4, ref_l4[..., :259]) < 1e-4


@pytest.mark.parametrize('k', range(NUM_OBJECTS))
def test_frame1_previous_crops(crops, parity_vectors, k):
  inputs, _ = crops[1, k]
  assert _rel(inputs.l1[0], _nhwc(parity_vectors[f'frame1.mem_select{k}.in1'][0])) < 1e-4
  assert _rel(inputs.l4[0], _nhwc(parity_vectors[f'frame1.mem_select{k}.in2'][0])) < 1e-4
  # Current-frame parts are zero features here; their shapes must still match.
  assert inputs.l1.shape == _nhwc(parity_vectors[f'frame1.mem_select{k}.in1']).shape
  assert inputs.l4.shape == _nhwc(parity_vectors[f'frame1.mem_select{k}.in2']).shape


def test_paste_back_places_unpadded_output(crops, parity_vectors):
  inputs, pads = crops[1, 0]
  box = parity_vectors['frame1.bbox'][0]
  hp, wp = inputs.l1.shape[1:3]
  logits = np.random.default_rng(0).normal(size=(hp, wp, 2)).astype(np.float32)
  frame_hw = parity_vectors['label'].shape[1:]
  pasted = np.asarray(object_crops.paste_back(logits, pads, box, frame_hw))
  (top, _), (left, _) = pads
  h, w = object_crops.box_size(box)
  np.testing.assert_array_equal(
    pasted[box[0] : box[1], box[2] : box[3]], logits[top : top + h, left : left + w]
  )
  outside = np.ones(frame_hw, bool)
  outside[box[0] : box[1], box[2] : box[3]] = False
  assert np.all(pasted[outside, 0] == object_crops.OUTSIDE_ROI_BACKGROUND)
  assert np.all(pasted[outside, 1] == 0)


def test_rejects_bad_boxes():
  with pytest.raises(ValueError, match='outside'):
    object_crops.check_box([5, 3, 0, 4], (10, 10))
  with pytest.raises(ValueError, match='outside'):
    object_crops.check_box([0, 11, 0, 4], (10, 10))
  with pytest.raises(ValueError, match='expected the ROI size'):
    object_crops.paste_back(np.zeros((8, 8, 2)), ((0, 0), (0, 0)), [0, 4, 0, 4], (10, 10))
