"""Tests of shls_jax.ops.resize and shls_jax.crops.resample against torch.nn.functional.interpolate and a loop RoIAlign."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from shls_jax.crops import resample
from shls_jax.ops import resize

SIZES = [(1, 1), (1, 5), (3, 2), (5, 7), (8, 16), (13, 29), (59, 105)]


def _torch_resize(x, size, mode):
  t = torch.from_numpy(np.ascontiguousarray(np.moveaxis(x, -1, 1)))
  kwargs = {'align_corners': False} if mode == 'bilinear' else {}
  return np.moveaxis(F.interpolate(t, size, mode=mode, **kwargs).numpy(), 1, -1)


@pytest.mark.parametrize('src', SIZES)
def test_resize_bilinear_matches_torch(src):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(2, *src, 3)).astype(np.float32)
  for dst in SIZES:
    ours = np.asarray(resize.resize_bilinear(x, dst))
    ref = _torch_resize(x, dst, 'bilinear')
    np.testing.assert_allclose(ours, ref, rtol=0, atol=2e-6, err_msg=f'{src} -> {dst}')


@pytest.mark.parametrize('src', SIZES)
def test_resize_nearest_matches_torch(src):
  rng = np.random.default_rng(1)
  x = rng.integers(1, 100, size=(1, *src, 2)).astype(np.float32)
  for dst in SIZES + [(118, 210), (30, 53)]:
    ours = np.asarray(resize.resize_nearest(x.astype(np.int32), dst))
    ref = _torch_resize(x, dst, 'nearest').astype(np.int32)
    np.testing.assert_array_equal(ours, ref, err_msg=f'{src} -> {dst}')


def test_resize_hand_values():
  x = np.array([[0.0, 1.0], [2.0, 3.0]], np.float32)[:, :, None]
  up = np.asarray(resize.resize_bilinear(x, (4, 4)))[:, :, 0]
  # Half-pixel centres: output column 1 samples source x = 0.25, column 0 clamps to 0.
  np.testing.assert_allclose(up[0], [0.0, 0.25, 0.75, 1.0])
  np.testing.assert_allclose(up[:, 0], [0.0, 0.5, 1.5, 2.0])
  down = np.asarray(resize.resize_bilinear(np.arange(4, dtype=np.float32)[None, :, None], (1, 2)))
  np.testing.assert_allclose(down[0, :, 0], [0.5, 2.5])
  near = np.asarray(resize.resize_nearest(np.arange(3)[None, :, None], (1, 5)))
  np.testing.assert_array_equal(near[0, :, 0], [0, 0, 1, 1, 2])


def test_resize_is_jittable_and_keeps_dtype():
  x = jnp.ones((5, 7, 2), jnp.float32)
  out = jax.jit(resize.resize_bilinear, static_argnums=1)(x, (3, 9))
  assert out.shape == (3, 9, 2) and out.dtype == jnp.float32
  labels = jnp.arange(35, dtype=jnp.int32).reshape(5, 7, 1)
  assert resize.resize_nearest(labels, (10, 14)).dtype == jnp.int32


def test_resize_rejects_bad_input():
  with pytest.raises(ValueError, match='H, W, C'):
    resize.resize_bilinear(np.zeros((4, 4)), (2, 2))
  with pytest.raises(ValueError, match='positive'):
    resize.resize_nearest(np.zeros((4, 4, 1)), (0, 2))


@pytest.mark.parametrize('shape,d', [((5, 7, 3), 4), ((8, 12, 1), 4), ((1, 2, 2, 1), 3)])
def test_pad_to_multiple_roundtrip(shape, d):
  x = np.random.default_rng(2).normal(size=shape).astype(np.float32)
  padded, pads = resample.pad_to_multiple(x, d)
  h, w = shape[-3:-1]
  assert padded.shape[-3] % d == 0 and padded.shape[-2] % d == 0
  (top, bottom), (left, right) = pads
  assert top == (padded.shape[-3] - h) // 2 and bottom == padded.shape[-3] - h - top
  assert left == (padded.shape[-2] - w) // 2 and right == padded.shape[-2] - w - left
  np.testing.assert_array_equal(resample.unpad(padded, pads), x)
  assert float(jnp.abs(padded).sum()) == pytest.approx(float(np.abs(x).sum()), rel=1e-5)


def _loop_roi_align(feat, box, out_hw, scale, sampling_ratio=-1):
  """RoIAlign (aligned=False) written sample by sample in float32, as torchvision's CPU kernel."""
  f32 = np.float32
  height, width, channels = feat.shape
  oh, ow = out_hw
  rmin, rmax, cmin, cmax = (f32(v) for v in box)
  sy, sx = rmin * f32(scale), cmin * f32(scale)
  roi_h = max(rmax * f32(scale) - sy, f32(1))
  roi_w = max(cmax * f32(scale) - sx, f32(1))
  bin_h, bin_w = roi_h / f32(oh), roi_w / f32(ow)
  gh = sampling_ratio if sampling_ratio > 0 else int(math.ceil(roi_h / f32(oh)))
  gw = sampling_ratio if sampling_ratio > 0 else int(math.ceil(roi_w / f32(ow)))
  out = np.zeros((oh, ow, channels), np.float32)
  for ph in range(oh):
    for pw in range(ow):
      acc = np.zeros(channels, np.float32)
      for iy in range(gh):
        y = sy + f32(ph) * bin_h + f32(iy + 0.5) * bin_h / f32(gh)
        for ix in range(gw):
          x = sx + f32(pw) * bin_w + f32(ix + 0.5) * bin_w / f32(gw)
          if not (-1 <= y <= height and -1 <= x <= width):
            continue
          yy, xx = max(y, f32(0)), max(x, f32(0))
          y0, x0 = int(yy), int(xx)
          if y0 >= height - 1:
            y0 = y1 = height - 1
            yy = f32(y0)
          else:
            y1 = y0 + 1
          if x0 >= width - 1:
            x0 = x1 = width - 1
            xx = f32(x0)
          else:
            x1 = x0 + 1
          ly, lx = yy - y0, xx - x0
          hy, hx = 1 - ly, 1 - lx
          acc += (
            hy * hx * feat[y0, x0]
            + hy * lx * feat[y0, x1]
            + ly * hx * feat[y1, x0]
            + ly * lx * feat[y1, x1]
          )
      out[ph, pw] = acc / max(gh * gw, 1)
  return out


def _random_boxes(rng, n, height, width):
  """Boxes in image pixels (4x the feature map), some tiny, some partly outside the map."""
  boxes = []
  for _ in range(n):
    r0 = int(rng.integers(-8, 4 * height))
    c0 = int(rng.integers(-8, 4 * width))
    r1 = r0 + int(rng.choice([1, 2, 3, rng.integers(1, 4 * height + 12)]))
    c1 = c0 + int(rng.choice([1, 3, rng.integers(1, 4 * width + 12)]))
    boxes.append([r0, r1, c0, c1])
  return boxes


def test_roi_align_matches_loop():
  rng = np.random.default_rng(3)
  feat = rng.normal(size=(9, 13, 3)).astype(np.float32)
  for box, out_hw in [
    ([3, 20, 5, 40], (3, 4)),
    ([-6, 1, 50, 60], (2, 2)),
    ([10, 11, 0, 2], (1, 3)),
  ]:
    ours = np.asarray(resample.roi_align(feat, box, out_hw, 0.25))
    np.testing.assert_allclose(ours, _loop_roi_align(feat, box, out_hw, 0.25), rtol=0, atol=2e-5)
  box = [3, 20, 5, 40]
  np.testing.assert_allclose(
    resample.roi_align(feat, box, (3, 4), 0.25, sampling_ratio=2),
    _loop_roi_align(feat, box, (3, 4), 0.25, sampling_ratio=2),
    rtol=0,
    atol=2e-5,
  )


@pytest.mark.parametrize('out_hw', [(1, 1), (2, 3), (5, 4)])
def test_roi_align_traced_box_matches_loop(out_hw):
  rng = np.random.default_rng(out_hw[0] * 10 + out_hw[1])
  feat = rng.normal(size=(9, 13, 3)).astype(np.float32)
  max_grid = (
    resample.roi_grid(0, 4 * 9 + 12, out_hw[0], 0.25),
    resample.roi_grid(0, 4 * 13 + 12, out_hw[1], 0.25),
  )
  fn = jax.jit(lambda f, b: resample.roi_align(f, b, out_hw, 0.25, max_grid=max_grid))
  for box in _random_boxes(rng, 25, 9, 13):
    ours = np.asarray(fn(feat, jnp.asarray(box, jnp.float32)))
    ref = _loop_roi_align(feat, box, out_hw, 0.25)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=2e-5, err_msg=f'{box} {out_hw}')


def test_roi_align_traced_box_needs_max_grid():
  with pytest.raises(ValueError, match='max_grid'):
    jax.jit(lambda f, b: resample.roi_align(f, b, (2, 2), 0.25))(jnp.zeros((4, 4, 1)), jnp.zeros(4))
