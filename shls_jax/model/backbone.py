"""The ResNet-18 feature extractor of SHLS and the PyTorch-exact layers it is built from.

Layout is NHWC. Submodule names follow the PyTorch module tree (`conv1`, `layer1.0.left.1`, ...)
so that a Flax variable path joined by '.' is the PyTorch state_dict name of the same tensor.
"""

import contextlib
import contextvars
import functools
from typing import Iterator, Optional, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

BN_MOMENTUM = 0.1  # PyTorch convention: new = (1 - m) * old + m * batch.
BN_EPS = 1e-5
WEIGHT_GRADIENTS = ('xla', 'rows', 'auto')
_NHWC = ('NHWC', 'HWIO', 'NHWC')
_weight_gradient = contextvars.ContextVar('conv_weight_gradient', default='xla')
COMPUTE_DTYPES = ('float32', 'bfloat16')
_compute_dtype = contextvars.ContextVar('compute_dtype', default=None)


def torch_uniform(fan_in: int) -> nn.initializers.Initializer:
  """PyTorch's default Conv/Linear initialiser: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
  bound = 1.0 / max(fan_in, 1) ** 0.5

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


@contextlib.contextmanager
def conv_weight_gradient(mode: str) -> Iterator[None]:
  """Within this context, `conv2d` layers built (traced) compute their kernel gradient as
  `mode` says:

    'xla'   XLA's own convolution gradient (the default; the reference mode always uses it);
    'rows'  for stride-1 convolutions, as kh matmuls of row-shifted, column-stacked inputs
            against the output gradient (`_kernel_gradient_rows`): the same sums in another
            order, equal up to float rounding (1.4e-5 relative on a 3x3 256->256 conv). XLA:CPU
            computes convolution kernel gradients at a seventh of its matmul rate; this form
            takes half the time (README, Benchmarks);
    'auto'  'rows' when JAX's default backend is the CPU, else 'xla'.
  """
  if mode not in WEIGHT_GRADIENTS:
    raise ValueError(f'conv weight gradient must be one of {WEIGHT_GRADIENTS}, got {mode!r}')
  if mode == 'auto':
    mode = 'rows' if jax.default_backend() == 'cpu' else 'xla'
  token = _weight_gradient.set(mode)
  try:
    yield
  finally:
    _weight_gradient.reset(token)


@contextlib.contextmanager
def compute_dtype(name: str) -> Iterator[None]:
  """Within this context, `conv2d` layers and the dense layers of the heads built (traced)
  compute in `name` ('float32' or 'bfloat16'): their inputs and kernels are cast to it and so are
  their outputs, while the parameters stay float32. BatchNorm statistics are taken in float32 in
  either case (`BatchNorm`). 'float32' is the default and the reference."""
  if name not in COMPUTE_DTYPES:
    raise ValueError(f'compute dtype must be one of {COMPUTE_DTYPES}, got {name!r}')
  token = _compute_dtype.set(None if name == 'float32' else jnp.dtype(name))
  try:
    yield
  finally:
    _compute_dtype.reset(token)


def layer_dtype() -> Optional[jnp.dtype]:
  """The compute dtype of layers built now (`compute_dtype`); None: from their inputs."""
  return _compute_dtype.get()


def _kernel_gradient_rows(x, dy, kernel_shape, padding, precision):
  """d loss / d kernel [kh, kw, ci, co] of a stride-1 NHWC conv with input x [N, H, W, ci],
  explicit padding ((top, bottom), (left, right)) and output gradient dy [N, Ho, Wo, co]."""
  kh, kw, ci, co = kernel_shape
  xp = jnp.pad(x, ((0, 0), *padding, (0, 0)))
  out_h, out_w = dy.shape[1:3]
  rows = []
  for i in range(kh):
    shifted = xp[:, i : i + out_h]
    cols = jnp.concatenate([shifted[:, :, j : j + out_w] for j in range(kw)], axis=-1)
    rows.append(jnp.einsum('nhwk,nhwo->ko', cols, dy, precision=precision).reshape(kw, ci, co))
  return jnp.stack(rows).astype(dy.dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _conv_rows(x, kernel, padding, precision):
  return jax.lax.conv_general_dilated(
    x, kernel, (1, 1), padding, dimension_numbers=_NHWC, precision=precision
  )


def _conv_rows_fwd(x, kernel, padding, precision):
  return _conv_rows(x, kernel, padding, precision), (x, kernel)


def _conv_rows_bwd(padding, precision, residuals, dy):
  x, kernel = residuals
  conv = lambda x: jax.lax.conv_general_dilated(
    x, kernel, (1, 1), padding, dimension_numbers=_NHWC, precision=precision
  )
  (dx,) = jax.vjp(conv, x)[1](dy)
  return dx, _kernel_gradient_rows(x, dy, kernel.shape, padding, precision)


_conv_rows.defvjp(_conv_rows_fwd, _conv_rows_bwd)


def _conv_with_row_gradient(
  lhs,
  rhs,
  window_strides,
  padding,
  lhs_dilation=None,
  rhs_dilation=None,
  dimension_numbers=None,
  feature_group_count=1,
  precision=None,
):
  """`lax.conv_general_dilated` (as nn.Conv calls it) whose kernel gradient is
  `_kernel_gradient_rows` for plain stride-1 NHWC convolutions, XLA's otherwise."""
  plain = (
    tuple(window_strides) == (1, 1)
    and not isinstance(padding, str)
    and all(d in (None, 1) for d in (*(lhs_dilation or ()), *(rhs_dilation or ())))
    and feature_group_count == 1
    and dimension_numbers == jax.lax.conv_dimension_numbers(lhs.shape, rhs.shape, _NHWC)
  )
  if not plain:
    return jax.lax.conv_general_dilated(
      lhs,
      rhs,
      window_strides,
      padding,
      lhs_dilation=lhs_dilation,
      rhs_dilation=rhs_dilation,
      dimension_numbers=dimension_numbers,
      feature_group_count=feature_group_count,
      precision=precision,
    )
  return _conv_rows(lhs, rhs, tuple(tuple(p) for p in padding), precision)


def conv2d(
  features: int,
  kernel_size: int,
  in_features: int,
  *,
  stride: int = 1,
  padding: int = 0,
  use_bias: bool = True,
  name: Optional[str] = None,
) -> nn.Conv:
  """A Conv equal to PyTorch `Conv2d(in, features, k, stride, padding)` (symmetric padding).

  Explicit symmetric padding makes output sizes floor((in + 2p - k) / s) + 1 as in PyTorch
  (118 -> 59 -> 30), unlike 'SAME'. The kernel gradient follows `conv_weight_gradient`.
  """
  fan_in = in_features * kernel_size * kernel_size
  rows = _weight_gradient.get() == 'rows' and kernel_size > 1
  return nn.Conv(
    features,
    (kernel_size, kernel_size),
    strides=(stride, stride),
    padding=((padding, padding), (padding, padding)),
    use_bias=use_bias,
    kernel_init=torch_uniform(fan_in),
    bias_init=torch_uniform(fan_in),
    conv_general_dilated=_conv_with_row_gradient if rows else None,
    dtype=layer_dtype(),
    name=name,
  )


def running_update(old: jax.Array, batch: jax.Array) -> jax.Array:
  """One PyTorch running-statistics step with momentum 0.1."""
  return (1.0 - BN_MOMENTUM) * old + BN_MOMENTUM * batch


class BatchNorm(nn.Module):
  """PyTorch BatchNorm over all axes but the last (channels), with PyTorch's statistics.

  Train mode normalises with the biased batch variance and updates `var` with the unbiased one
  (n / (n - 1)), `mean` with momentum 0.1, and counts `num_batches_tracked`; eval mode uses the
  running statistics. Statistics are taken in float32 (or wider) whatever the input's dtype, and
  the output has the input's dtype. Variables: params `scale`, `bias`; batch_stats `mean`, `var`,
  `num_batches_tracked` (int32 scalar).
  """

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    features = x.shape[-1]
    scale = self.param('scale', nn.initializers.ones, (features,))
    bias = self.param('bias', nn.initializers.zeros, (features,))
    ra_mean = self.variable('batch_stats', 'mean', jnp.zeros, (features,), jnp.float32)
    ra_var = self.variable('batch_stats', 'var', jnp.ones, (features,), jnp.float32)
    count = self.variable('batch_stats', 'num_batches_tracked', lambda: jnp.zeros((), jnp.int32))
    if train:
      axes = tuple(range(x.ndim - 1))
      n = x.size // features
      wide = x.astype(jnp.promote_types(x.dtype, jnp.float32))
      mean = jnp.mean(wide, axis=axes)
      var = jnp.mean(jnp.square(wide - mean), axis=axes)
      if not self.is_initializing():
        ra_mean.value = running_update(ra_mean.value, mean)
        ra_var.value = running_update(ra_var.value, var * (n / max(n - 1, 1)))
        count.value = count.value + 1
    else:
      mean, var = ra_mean.value, ra_var.value
    return ((x - mean) * (jax.lax.rsqrt(var + BN_EPS) * scale) + bias).astype(x.dtype)


class ConvBN(nn.Module):
  """Conv (child '0') + BatchNorm (child '1') [+ ReLU], a PyTorch `Sequential` of those."""

  features: int
  kernel_size: int
  stride: int = 1
  padding: int = 0
  use_bias: bool = False
  relu: bool = True

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    x = conv2d(
      self.features,
      self.kernel_size,
      x.shape[-1],
      stride=self.stride,
      padding=self.padding,
      use_bias=self.use_bias,
      name='0',
    )(x)
    x = BatchNorm(name='1')(x, train)
    return nn.relu(x) if self.relu else x


class BasicBlockBody(nn.Module):
  """conv3x3(stride) - BN - ReLU - conv3x3 - BN; children '0', '1', '3', '4' as in PyTorch."""

  features: int
  stride: int

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    x = conv2d(
      self.features, 3, x.shape[-1], stride=self.stride, padding=1, use_bias=False, name='0'
    )(x)
    x = nn.relu(BatchNorm(name='1')(x, train))
    x = conv2d(self.features, 3, self.features, padding=1, use_bias=False, name='3')(x)
    return BatchNorm(name='4')(x, train)


class BasicBlock(nn.Module):
  """ResNet basic block: relu(left(x) + shortcut(x)); the shortcut is a 1x1 conv + BN when the
  stride or the channel count changes, the identity otherwise."""

  features: int
  stride: int = 1

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    out = BasicBlockBody(self.features, self.stride, name='left')(x, train)
    if self.stride != 1 or x.shape[-1] != self.features:
      x = ConvBN(self.features, 1, stride=self.stride, relu=False, name='shortcut')(x, train)
    return nn.relu(out + x)


class ResLayer(nn.Module):
  """`num_blocks` basic blocks named '0', '1', ...; only the first one strides."""

  features: int
  stride: int
  num_blocks: int = 2

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    for i in range(self.num_blocks):
      x = BasicBlock(self.features, self.stride if i == 0 else 1, name=str(i))(x, train)
    return x


class ResNet18(nn.Module):
  """ResNet-18 variant without max-pool.

  Input [B, H, W, 3] float32 (normalised image). Returns (L4 [B, h4, w4, 256], L2 [B, h2, w2, 64])
  with h2 = floor((H - 1) / 2) + 1 and h4 = floor((h2 - 1) / 2) + 1 (PyTorch sizes).
  """

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> Tuple[jax.Array, jax.Array]:
    x = ConvBN(64, 7, stride=2, padding=3, name='conv1')(x, train)
    l2 = ResLayer(64, 1, name='layer1')(x, train)
    x = ResLayer(128, 2, name='layer2')(l2, train)
    x = ResLayer(256, 1, name='layer3')(x, train)
    l4 = ResLayer(256, 1, name='layer4')(x, train)
    return l4, l2
