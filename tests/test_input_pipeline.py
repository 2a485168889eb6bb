"""tf.data input pipeline: batch layout over local devices, padding masks, per-process shards."""

import numpy as np
import pytest

from shls_jax.data import defaults as data_defaults
from shls_jax.data import input_pipeline, synthetic

T, H, W, CAP = 2, 48, 48, 96


def _config(**overrides):
  config = data_defaults.get_config()
  config.seq_len = T
  config.image_size = (H, W)
  config.slic_segments = 30
  config.superpixel_capacity = CAP
  config.update(overrides)
  return config


@pytest.fixture(scope='module')
def source():
  rngs = np.random.default_rng(0)
  pairs = [synthetic.make_still(rngs, 50, 60, soft=i % 2 == 0) for i in range(8)]
  return [(image, mask.astype(np.float32) / 255.0) for image, mask in pairs]


def _first_batch(source, **kwargs):
  batches = input_pipeline.create_split(
    source, batch_size_per_device=1, local_devices=2, seed=1, config=_config(), **kwargs
  )
  batch = next(batches)
  batches.close()
  return batch


@pytest.fixture(scope='module')
def batch(source):
  return _first_batch(source, process_index=0, process_count=1)


def test_batch_shapes_and_dtypes(batch):
  expected = {
    'image': ((2, 1, T, H, W, 3), np.float32),
    'spx': ((2, 1, T, H, W), np.int32),
    'label': ((2, 1, T, H, W), np.int32),
    'pools': ((2, 1, T, CAP), np.int32),
    'spx_valid': ((2, 1, T, CAP), bool),
    'num_cls': ((2, 1), np.int32),
    'cls_valid': ((2, 1, 4), bool),
    'index': ((2, 1), np.int32),
  }
  assert {k: (v.shape, v.dtype) for k, v in batch.items()} == expected


def test_padding_masks_match_contents(batch):
  num_spx = batch['spx'].reshape(2, 1, T, -1).max(-1)
  np.testing.assert_array_equal(batch['spx_valid'].sum(-1), num_spx)
  assert np.all(batch['pools'][~batch['spx_valid']] == 0)
  valid_pools = batch['pools'][batch['spx_valid']]
  assert valid_pools.min() >= 1 and valid_pools.max() <= batch['num_cls'].max()
  np.testing.assert_array_equal(batch['cls_valid'].sum(-1), batch['num_cls'])
  np.testing.assert_array_equal(batch['label'].reshape(2, 1, -1).max(-1), batch['num_cls'])


def test_images_are_normalised_with_msra_statistics(batch):
  image = batch['image'] * np.float32(data_defaults.MSRA_STD) + np.float32(data_defaults.MSRA_MEAN)
  assert image.min() >= -1e-5 and image.max() <= 1 + 1e-5


def test_same_seed_gives_the_same_batch(source, batch):
  again = _first_batch(source, process_index=0, process_count=1)
  for key, value in batch.items():
    np.testing.assert_array_equal(again[key], value)


def test_processes_read_disjoint_shards(source):
  seen = []
  for process in range(2):
    batches = input_pipeline.create_split(
      source,
      batch_size_per_device=1,
      local_devices=2,
      seed=0,
      config=_config(),
      process_index=process,
      process_count=2,
      num_epochs=1,
    )
    seen.append({int(i) for b in batches for i in b['index'].ravel()})
  assert seen[0] and seen[1] and not seen[0] & seen[1]
  assert seen[0] <= {0, 2, 4, 6} and seen[1] <= {1, 3, 5, 7}


def test_pad_sample_refuses_samples_over_capacity():
  sample = {
    'image': np.zeros((T, 4, 4, 3), np.uint8),
    'spx': np.ones((T, 4, 4), np.int32),
    'label': np.ones((T, 4, 4), np.int32),
    'pools': [np.ones(3, np.int32)] * T,
    'num_spx': np.array([3] * T, np.int32),
    'num_cls': 5,
  }
  with pytest.raises(ValueError, match='object_capacity=3'):
    input_pipeline.pad_sample(sample, _config())
  padded = input_pipeline.pad_sample({**sample, 'num_cls': 1}, _config(superpixel_capacity=3))
  assert padded['spx_valid'].all() and padded['cls_valid'].tolist() == [True, False, False, False]


def test_bad_shard_arguments_are_refused(source):
  with pytest.raises(ValueError, match='process_index 2'):
    input_pipeline.create_split(
      source, batch_size_per_device=1, local_devices=1, seed=0, process_index=2, process_count=2
    )
  with pytest.raises(ValueError, match='fewer than one batch'):
    input_pipeline.create_split(
      source[:2], batch_size_per_device=2, local_devices=2, seed=0, process_index=0, process_count=1
    )


# --- superpixels inside the training step ----------------------------------------------------


def test_in_step_batches_carry_frames_and_the_step_completes_them(source, batch):
  import jax

  from shls_jax.data import step_inputs
  from shls_jax.superpixels import pools as pools_lib

  config = _config(superpixels_in_step=True)
  batches = input_pipeline.create_split(
    source, batch_size_per_device=1, local_devices=2, seed=1, config=config
  )
  shipped = next(batches)
  batches.close()
  assert {k: (v.shape, v.dtype) for k, v in shipped.items()} == {
    'frames': ((2, 1, T, H, W, 3), np.uint8),
    'label': ((2, 1, T, H, W), np.int32),
    'num_cls': ((2, 1), np.int32),
    'cls_valid': ((2, 1, 4), bool),
    'index': ((2, 1), np.int32),
  }
  # Same seed, same pseudo-sequence: the host path's labels, and its image once normalised.
  np.testing.assert_array_equal(shipped['label'], batch['label'])
  settings = step_inputs.settings(config)
  done, overflow = jax.jit(step_inputs.complete, static_argnums=1)(
    {k: v[0] for k, v in shipped.items()}, settings
  )
  np.testing.assert_allclose(done['image'], batch['image'][0], atol=1e-6)
  assert float(overflow) == 0.0
  for t in range(T):
    spx, label = np.asarray(done['spx'][0, t]), shipped['label'][0, 0, t]
    count = int(spx.max())
    assert np.unique(spx).size == count and int(done['spx_valid'][0, t].sum()) == count
    np.testing.assert_array_equal(done['pools'][0, t, :count], pools_lib.mode_pools(spx, label))
    assert not np.any(done['pools'][0, t, count:])
  # Frame 0's superpixels follow its labels.
  spx0, label0 = np.asarray(done['spx'][0, 0]), shipped['label'][0, 0, 0]
  assert all(np.unique(label0[spx0 == s]).size == 1 for s in np.unique(spx0))
