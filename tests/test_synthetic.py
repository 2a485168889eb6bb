"""Synthetic demo data: still-image and DAVIS-layout writers, determinism and the CLI."""

import numpy as np
from PIL import Image

from shls_jax.data import davis, stills, synthetic


def test_stills_follow_the_msra10k_layout(tmp_path):
  names = synthetic.write_stills(tmp_path, num_images=6, size=(40, 50), seed=0)
  assert (
    len(stills.list_msra10k(tmp_path, 'train')) + len(stills.list_msra10k(tmp_path, 'val'))
    == len(names)
    == 6
  )
  for sample in stills.list_msra10k(tmp_path):
    image, mask = stills.load_sample(sample)
    assert image.shape == (40, 50, 3) and mask.max() == 1.0
    assert 0.02 < np.mean(mask > 0) < 0.8
    assert stills.region_labels(mask).max() >= 2


def test_still_objects_stand_out_in_saturation():
  rng = np.random.default_rng(1)
  for _ in range(5):
    image, mask = synthetic.make_still(rng, 60, 80, soft=False)
    rgb = image.astype(np.float32)
    saturation = (rgb.max(-1) - rgb.min(-1)) / np.maximum(rgb.max(-1), 1)
    assert saturation[mask > 0].mean() > saturation[mask == 0].mean() + 0.2


def test_writers_are_deterministic(tmp_path):
  for run in ('a', 'b'):
    synthetic.write_stills(tmp_path / run / 's', num_images=2, size=(20, 24), seed=5)
    synthetic.write_videos(tmp_path / run / 'v', num_videos=1, num_frames=2, size=(30, 40), seed=5)
  for path in (tmp_path / 'a').rglob('*.*'):
    assert path.read_bytes() == (tmp_path / 'b' / path.relative_to(tmp_path / 'a')).read_bytes()


def test_videos_follow_the_davis_layout(tmp_path, command):
  done = command(
    'shls_jax.tools.synthetic',
    '--videos',
    tmp_path,
    '--num_videos=2',
    '--frames=5',
    '--objects=3',
    '--video_size=60,108',
  )
  assert done.returncode == 0, done.stderr
  names = davis.list_sequences(tmp_path, 'val')
  assert names == ['synth000', 'synth001']
  for name in names:
    sequence = davis.load_sequence(tmp_path, name)
    assert sequence.object_ids == (1, 2, 3) and len(sequence.frames) == 5
    assert davis.load_frames(sequence).shape == (5, 60, 108, 3)
    masks = davis.load_masks(sequence)
    assert set(np.unique(masks)) <= {0, 1, 2, 3}
    with Image.open(sequence.annotations[0]) as png:
      assert png.mode == 'P'
    # Smooth motion: consecutive masks of an object overlap.
    for k in (1, 2, 3):
      a, b = masks[0] == k, masks[1] == k
      if a.any() and b.any():
        assert (a & b).sum() / (a | b).sum() > 0.3
