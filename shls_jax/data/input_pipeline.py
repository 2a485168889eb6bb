"""Training input pipeline: pseudo-sequences from still images, batched with tf.data.

Each process reads its own shard of the still images, turns each drawn image into a
pseudo-sequence in parallel host threads, pads the variable-size parts to fixed capacities and
yields numpy batches shaped [local_devices, batch_size_per_device, ...] for `jax.pmap`.

Batch keys (D local devices, B per device, T frames, `cap` = config.superpixel_capacity):
  image [D, B, T, H, W, 3] float32, normalised with the MSRA mean/std;
  spx [D, B, T, H, W] int32, dense 1..N_t (frame 0 merged with its labels);
  label [D, B, T, H, W] int32, 1 = background, 2..num_cls = objects;
  pools [D, B, T, cap] int32, class of superpixel n at n - 1, 0 past N_t;
  spx_valid [D, B, T, cap] bool, True for the N_t real superpixels;
  num_cls [D, B] int32; cls_valid [D, B, object_capacity + 1] bool, True for labels 1..num_cls;
  index [D, B] int32, the source image each sequence was made from.

With `config.superpixels_in_step` the step computes the superpixels (`step_inputs`): a batch then
holds frames [D, B, T, H, W, 3] uint8 (RGB, not normalised) in place of image, spx, pools and
spx_valid.

A drawn image whose pseudo-sequence exceeds a capacity (too many regions or superpixels) is
replaced by another image of the shard, drawn from the same sample seed; after
`config.max_redraws` replacements the pipeline stops with an error naming the capacities.
"""

import atexit
import weakref
from typing import Sequence

import jax
import ml_collections
import numpy as np
import tensorflow as tf

from shls_jax.data import defaults, pseudo_sequences


def hide_gpus_from_tensorflow() -> None:
  """Keeps TensorFlow off the accelerators so that JAX owns their memory."""
  if not tf.config.get_visible_devices('GPU'):
    return
  try:
    tf.config.set_visible_devices([], 'GPU')
  except RuntimeError as error:
    raise RuntimeError(
      'TensorFlow already initialised its GPUs; call '
      'hide_gpus_from_tensorflow() before any TensorFlow op'
    ) from error


def pad_sample(sample: dict, config: ml_collections.ConfigDict) -> dict:
  """Fixed-shape arrays of one pseudo-sequence (see the module docstring, without D and B).

  Raises:
    ValueError: the sample exceeds `superpixel_capacity` or `object_capacity`.
  """
  cap, cls_cap = config.superpixel_capacity, config.object_capacity + 1
  if not _fits(sample, config):
    raise ValueError(
      f'pseudo-sequence with {sample["num_cls"]} classes and up to '
      f'{_most_superpixels(sample)} superpixels exceeds object_capacity={cls_cap - 1} or '
      f'superpixel_capacity={cap}'
    )
  classes = {
    'num_cls': np.int32(sample['num_cls']),
    'cls_valid': np.arange(1, cls_cap + 1) <= sample['num_cls'],
  }
  if 'spx' not in sample:
    return {'frames': sample['image'], 'label': sample['label'], **classes}
  num_spx = sample['num_spx']
  slots = np.arange(cap)
  spx_valid = slots[None, :] < num_spx[:, None]
  pools = np.zeros((len(num_spx), cap), np.int32)
  pools[spx_valid] = np.concatenate(sample['pools'])
  mean = np.asarray(config.mean, np.float32)
  std = np.asarray(config.std, np.float32)
  return {
    'image': (sample['image'].astype(np.float32) / 255.0 - mean) / std,
    'spx': sample['spx'],
    'label': sample['label'],
    'pools': pools,
    'spx_valid': spx_valid,
    **classes,
  }


def _most_superpixels(sample: dict) -> int:
  """Superpixels of the sample's fullest frame (0 when the step computes them)."""
  return int(sample['num_spx'].max()) if 'num_spx' in sample else 0


def _fits(sample: dict, config: ml_collections.ConfigDict) -> bool:
  return (
    sample['num_cls'] <= config.object_capacity + 1
    and _most_superpixels(sample) <= config.superpixel_capacity
  )


def generate(
  source, indices: np.ndarray, index: int, seed: Sequence[int], config: ml_collections.ConfigDict
) -> dict:
  """One padded pseudo-sequence (with its 'index') of `source[index]`.

  Args:
    source: random access to (RGB uint8 [H, W, 3], soft mask float [H, W]) pairs.
    indices: the shard's indices into `source`, from which pasted objects (other than `index`)
      and replacements of over-capacity samples are drawn.
    index: the image to start from.
    seed: entropy of this sample (same seed, same output).
    config: see `defaults.get_config`.
  """
  rng = np.random.default_rng(list(seed))

  def load(i):
    return pseudo_sequences.rescale_still(*source[i], config.get('still_short_side', 0))

  def draw_other(rng):
    others = indices[indices != index] if indices.size > 1 else indices
    return load(int(rng.choice(others)))

  for _ in range(config.max_redraws + 1):
    sample = pseudo_sequences.make_pseudo_sequence(
      *load(index),
      rng,
      length=config.seq_len,
      size=tuple(config.image_size),
      others=draw_other,
      max_labels=config.max_labels,
      n_segments=config.slic_segments,
      compactness=config.slic_compactness,
      sigma=config.slic_sigma,
      with_superpixels=not config.get('superpixels_in_step', False),
    )
    if _fits(sample, config):
      return {**pad_sample(sample, config), 'index': np.int32(index)}
    index = int(rng.choice(indices))
  raise ValueError(
    f'{config.max_redraws + 1} pseudo-sequences in a row exceeded '
    f'object_capacity={config.object_capacity} or superpixel_capacity={config.superpixel_capacity} '
    f'(last: {sample["num_cls"]} classes, {_most_superpixels(sample)} superpixels)'
  )


def _output_spec(config: ml_collections.ConfigDict) -> dict:
  t, (h, w), cap = config.seq_len, tuple(config.image_size), config.superpixel_capacity
  classes = {
    'num_cls': tf.TensorSpec((), tf.int32),
    'cls_valid': tf.TensorSpec((config.object_capacity + 1,), tf.bool),
    'index': tf.TensorSpec((), tf.int32),
  }
  if config.get('superpixels_in_step', False):
    return {
      'frames': tf.TensorSpec((t, h, w, 3), tf.uint8),
      'label': tf.TensorSpec((t, h, w), tf.int32),
      **classes,
    }
  return {
    'image': tf.TensorSpec((t, h, w, 3), tf.float32),
    'spx': tf.TensorSpec((t, h, w), tf.int32),
    'label': tf.TensorSpec((t, h, w), tf.int32),
    'pools': tf.TensorSpec((t, cap), tf.int32),
    'spx_valid': tf.TensorSpec((t, cap), tf.bool),
    **classes,
  }


def create_split(
  source,
  *,
  batch_size_per_device: int,
  local_devices: int,
  seed: int,
  config: ml_collections.ConfigDict | None = None,
  process_index: int | None = None,
  process_count: int | None = None,
  num_epochs: int | None = None,
  num_parallel_calls: int = tf.data.AUTOTUNE,
  prefetch: int = tf.data.AUTOTUNE,
) -> 'Batches':
  """Iterator over training batches of pseudo-sequences.

  Args:
    source: random access to still images: `len(source)` and `source[i]` -> (RGB uint8
      [H, W, 3], soft mask float [H, W] in [0, 1]), e.g. `stills.StillImageSet`.
    batch_size_per_device: sequences per device and step.
    local_devices: devices of this process (`jax.local_device_count()`).
    seed: shuffling and augmentation seed; the same seed gives the same batches.
    config: see `defaults.get_config` (None uses it).
    process_index, process_count: this process's shard (defaults: `jax.process_index()`,
      `jax.process_count()`); process p reads images p, p + count, p + 2 count, ...
    num_epochs: passes over the shard; None repeats forever.
    num_parallel_calls: sequences generated concurrently.
    prefetch: batches prepared ahead (default: tf.data's autotuning).

  Returns:
    Iterator of numpy batches (see the module docstring); incomplete batches are dropped.
  """
  hide_gpus_from_tensorflow()
  config = defaults.get_config() if config is None else config
  process_index = jax.process_index() if process_index is None else process_index
  process_count = jax.process_count() if process_count is None else process_count
  if not 0 <= process_index < process_count:
    raise ValueError(f'process_index {process_index} outside 0..{process_count - 1}')
  indices = np.arange(process_index, len(source), process_count)
  batch = batch_size_per_device * local_devices
  if indices.size < batch:
    raise ValueError(
      f'shard {process_index} of {process_count} holds {indices.size} images, '
      f'fewer than one batch of {batch}'
    )

  spec = _output_spec(config)
  keys = list(spec)

  def generate_flat(counter, index):
    sample_seed = (seed, process_index, int(counter))
    sample = generate(source, indices, int(index), sample_seed, config)
    return [sample[k] for k in keys]

  def to_tensors(counter, index):
    flat = tf.numpy_function(
      generate_flat, [counter, index], [spec[k].dtype for k in keys], stateful=False
    )
    return {k: tf.ensure_shape(v, spec[k].shape) for k, v in zip(keys, flat)}

  def split_devices(x):
    return tf.reshape(x, (local_devices, batch_size_per_device, *x.shape[1:]))

  ds = tf.data.Dataset.from_tensor_slices(indices)
  ds = ds.shuffle(indices.size, seed=seed, reshuffle_each_iteration=True).repeat(num_epochs)
  ds = ds.enumerate().map(to_tensors, num_parallel_calls=num_parallel_calls, deterministic=True)
  ds = ds.batch(batch, drop_remainder=True)
  ds = ds.map(lambda b: tf.nest.map_structure(split_devices, b))
  return Batches(ds.prefetch(prefetch))


class Batches:
  """Iterator of the numpy batches of a dataset, released at interpreter exit.

  The generation threads call back into Python; if the dataset iterator is still alive when
  Python shuts down, they wait forever for the interpreter and the process never exits. `close`
  drops the iterator; it runs at exit for every iterator still open.
  """

  def __init__(self, dataset: tf.data.Dataset):
    self._iterator = dataset.as_numpy_iterator()
    _OPEN_BATCHES.add(self)

  def __iter__(self) -> 'Batches':
    return self

  def __next__(self) -> dict:
    if self._iterator is None:
      raise StopIteration
    return next(self._iterator)

  def close(self) -> None:
    """Stops the pipeline; the iterator then reports exhaustion."""
    self._iterator = None


_OPEN_BATCHES = weakref.WeakSet()


@atexit.register
def _close_open_batches() -> None:
  for batches in list(_OPEN_BATCHES):
    batches.close()
