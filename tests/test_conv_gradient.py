"""The row-matmul kernel gradient of `backbone.conv2d` against XLA's, per layer and on a whole
training step."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_train_step import fake_batch, tiny_config

from shls_jax.model import backbone
from shls_jax.training import train_step as ts


def _grads(mode, stride, kernel, padding, x):
  layer = backbone.conv2d(5, kernel, x.shape[-1], stride=stride, padding=padding)
  params = layer.init(jax.random.PRNGKey(0), x)

  def loss(params, x):
    with backbone.conv_weight_gradient(mode):
      layer_now = backbone.conv2d(5, kernel, x.shape[-1], stride=stride, padding=padding)
      return jnp.sum(jnp.sin(layer_now.apply(params, x)))

  return jax.grad(loss, argnums=(0, 1))(params, x)


@pytest.mark.parametrize('stride,kernel,padding', [(1, 3, 1), (1, 3, 0), (2, 3, 1), (1, 1, 0)])
def test_row_kernel_gradient_equals_xla(stride, kernel, padding):
  x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 9, 11, 4)), jnp.float32)
  rows = _grads('rows', stride, kernel, padding, x)
  xla = _grads('xla', stride, kernel, padding, x)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5), rows, xla)


def test_unknown_mode_is_refused():
  with pytest.raises(ValueError, match='rows'):
    with backbone.conv_weight_gradient('fast'):
      pass
  with pytest.raises(ValueError, match='conv_weight_gradient'):
    ts.create_train_state(jax.random.PRNGKey(0), tiny_config(conv_weight_gradient='fast'))


def test_training_step_gradients_agree_across_modes():
  batch = {k: v[0] for k, v in fake_batch(3, 1, 1).items()}
  results = {}
  for mode in ('rows', 'xla'):
    config = tiny_config(conv_weight_gradient=mode)
    state = ts.create_train_state(jax.random.PRNGKey(0), config)
    results[mode] = jax.jit(
      lambda p, s, b, config=config: ts.compute_gradients(
        p, s, b, jax.random.PRNGKey(1), config=config
      )
    )(state.params, state.batch_stats, batch)
  grads_rows, grads_xla = results['rows'][0], results['xla'][0]
  scale = max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(grads_xla))
  worst = max(
    float(jnp.max(jnp.abs(a - b)))
    for a, b in zip(jax.tree.leaves(grads_rows), jax.tree.leaves(grads_xla))
  )
  assert worst <= 1e-4 * scale, (worst, scale)
  np.testing.assert_allclose(results['rows'][2]['loss'], results['xla'][2]['loss'], rtol=1e-6)
