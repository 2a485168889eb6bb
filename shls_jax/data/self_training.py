"""Self-trained saliency: a small fully convolutional network learnt from scratch over a folder.

The pseudo-masks of `saliency.METHODS['self_trained']` (the recipe of DeepUSPS, Nguyen et al.
2019, without its pretrained network): the fused cues of every image, cut by GrabCut, are the
first targets; a few rounds then each train `SaliencyNet` on the targets of all images and move
the targets towards its own predictions,

  targets <- target_momentum x targets + (1 - target_momentum) x predictions,

so that what the network learns across the folder (an object's look, where objects lie)
corrects the per-image maps it started from. Images and targets are square `size` x `size`
arrays (each image resized, aspect not kept); predictions are resized back to the image.

`fit` is resumable: its state (variables, optimiser, targets, round and epoch) is written to
`<state_dir>/state.msgpack` after every epoch, written aside and renamed, and every round's
variables to `<state_dir>/round_<k>.msgpack`.
"""

import functools
import os
from pathlib import Path
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import serialization
from tqdm import tqdm

STATE_FILE = 'state.msgpack'


class SaliencyNet(nn.Module):
  """[B, S, S, 3] float images in [0, 1] -> [B, S, S] saliency logits (S divisible by 4).

  Three scales (1, 1/2, 1/4), two dilated blocks at 1/4 for context, and skip connections on
  the way up; two coordinate channels let it learn where objects tend to lie.
  """

  width: int = 32

  @nn.compact
  def __call__(self, images: jax.Array) -> jax.Array:
    batch, size = images.shape[0], images.shape[1]
    ramp = jnp.linspace(-1.0, 1.0, size)
    coords = jnp.broadcast_to(
      jnp.stack(jnp.meshgrid(ramp, ramp, indexing='ij'), -1), (batch, size, size, 2)
    )
    x = jnp.concatenate([(images - 0.45) / 0.25, coords], -1)

    def block(x, features, strides=1, dilation=1):
      x = nn.Conv(features, (3, 3), strides=strides, kernel_dilation=dilation)(x)
      return nn.relu(nn.GroupNorm(num_groups=min(8, features))(x))

    full = block(block(x, self.width), self.width)
    half = block(block(full, 2 * self.width, strides=2), 2 * self.width)
    quarter = block(half, 4 * self.width, strides=2)
    quarter = block(block(quarter, 4 * self.width, dilation=2), 4 * self.width, dilation=4)
    up = jax.image.resize(quarter, half.shape[:3] + (quarter.shape[-1],), 'bilinear')
    up = block(jnp.concatenate([up, half], -1), 2 * self.width)
    up = jax.image.resize(up, full.shape[:3] + (up.shape[-1],), 'bilinear')
    up = block(jnp.concatenate([up, full], -1), self.width)
    return nn.Conv(1, (1, 1))(up)[..., 0]


class _State(NamedTuple):
  params: Any
  opt_state: Any
  targets: np.ndarray  # [N, S, S] float32
  round: int  # rounds finished
  epoch: int  # epochs finished of the current round


def _optimizer(p: dict) -> optax.GradientTransformation:
  return optax.adam(p['learning_rate'])


def _initial(p: dict, targets: np.ndarray) -> _State:
  size = int(p['size'])
  params = SaliencyNet(int(p['width'])).init(
    jax.random.PRNGKey(int(p['seed'])), jnp.zeros((1, size, size, 3))
  )['params']
  return _State(params, _optimizer(p).init(params), targets, 0, 0)


def _save(path: Path, tree) -> None:
  partial = path.with_name(f'.{path.name}.partial')
  partial.write_bytes(serialization.to_bytes(tree))
  os.replace(partial, path)


def _load(path: Path, template: _State) -> _State:
  try:
    restored = serialization.from_bytes(template._asdict(), path.read_bytes())
  except Exception as error:  # msgpack and flax raise several kinds on a damaged file.
    raise ValueError(
      f'cannot read the self-training state {path} ({error}): delete it to start over'
    ) from None
  state = _State(**restored)
  if state.targets.shape != template.targets.shape:
    raise ValueError(
      f'the self-training state {path} is of {len(state.targets)} images, not '
      f'{len(template.targets)}: delete it to start over'
    )
  return state._replace(round=int(state.round), epoch=int(state.epoch))


def _train_step(optimizer, width):
  def loss_fn(params, images, targets):
    logits = SaliencyNet(width).apply({'params': params}, images)
    return optax.sigmoid_binary_cross_entropy(logits, targets).mean()

  @jax.jit
  def step(params, opt_state, images, targets):
    loss, grads = jax.value_and_grad(loss_fn)(params, images, targets)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  return step


@functools.lru_cache
def _predictor(width):
  @jax.jit
  def predict(params, images):
    return jax.nn.sigmoid(SaliencyNet(width).apply({'params': params}, images))

  return predict


def predict_all(params, images: np.ndarray, p: dict) -> np.ndarray:
  """float32 [N, S, S] saliency of uint8 images [N, S, S, 3], in batches of `batch_size`."""
  predict = _predictor(int(p['width']))
  batch = int(p['batch_size'])
  out = []
  for start in range(0, len(images), batch):
    chunk = images[start : start + batch]
    # Padded to a full batch: one compiled shape.
    padded = np.concatenate([chunk, np.zeros((batch - len(chunk),) + chunk.shape[1:], np.uint8)])
    out.append(np.asarray(predict(params, padded.astype(np.float32) / 255))[: len(chunk)])
  return np.concatenate(out)


def fit(
  images: np.ndarray, targets: np.ndarray, state_dir, p: dict, *, progress: bool = True
) -> list:
  """Trains `SaliencyNet` over a folder by rounds of self-training (module docstring).

  Args:
    images: uint8 [N, S, S, 3], S = `p['size']`.
    targets: float32 [N, S, S] in [0, 1], the first round's targets.
    state_dir: folder of the resumable state (created).
    p: the parameters of `saliency.DEFAULTS['self_trained']`.
    progress: show a progress bar.

  Returns:
    The network parameters after each round, `p['rounds']` of them.

  Raises:
    ValueError: mismatched shapes, or a state file that is damaged or of other images.
  """
  size, rounds, epochs = int(p['size']), int(p['rounds']), int(p['epochs'])
  if images.shape[1:] != (size, size, 3) or targets.shape != images.shape[:3]:
    raise ValueError(
      f'need images [N, {size}, {size}, 3] and targets [N, {size}, {size}], '
      f'got {images.shape} and {targets.shape}'
    )
  state_dir = Path(state_dir)
  state_dir.mkdir(parents=True, exist_ok=True)
  state = _initial(p, targets.astype(np.float32))
  if (state_dir / STATE_FILE).is_file():
    state = _load(state_dir / STATE_FILE, state)
  optimizer = _optimizer(p)
  step = _train_step(optimizer, int(p['width']))
  batch = min(int(p['batch_size']), len(images))
  per_epoch = len(images) // batch
  total = rounds * epochs
  bar = tqdm(
    total=total,
    initial=min(state.round * epochs + state.epoch, total),
    desc='self-training',
    unit='epoch',
    disable=not progress,
  )
  params, opt_state = state.params, state.opt_state
  targets = np.asarray(state.targets)
  try:
    for round_ in range(state.round, rounds):
      for epoch in range(state.epoch if round_ == state.round else 0, epochs):
        # Seeded by round and epoch: a resumed run draws the batches of an uninterrupted one.
        rng = np.random.default_rng((int(p['seed']), round_, epoch))
        order = rng.permutation(len(images))
        losses = []
        for k in range(per_epoch):
          index = order[k * batch : (k + 1) * batch]
          x, y = images[index].astype(np.float32) / 255, targets[index]
          flip = rng.random(len(index)) < 0.5
          x[flip], y[flip] = x[flip, :, ::-1], y[flip, :, ::-1]
          params, opt_state, loss = step(params, opt_state, x, y)
          losses.append(float(loss))
        _save(
          state_dir / STATE_FILE, _State(params, opt_state, targets, round_, epoch + 1)._asdict()
        )
        bar.set_postfix(round=round_ + 1, loss=f'{np.mean(losses):.4f}')
        bar.update()
      momentum = float(p['target_momentum'])
      targets = momentum * targets + (1 - momentum) * predict_all(params, images, p)
      _save(state_dir / f'round_{round_ + 1}.msgpack', params)
      _save(state_dir / STATE_FILE, _State(params, opt_state, targets, round_ + 1, 0)._asdict())
  finally:
    bar.close()
  template = state.params
  return [
    serialization.from_bytes(template, (state_dir / f'round_{k}.msgpack').read_bytes())
    for k in range(1, rounds + 1)
  ]
