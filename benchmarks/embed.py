"""Time per frame of the embedding (backbone + superfeatures) and of the superpixel pooling
alone, jitted, after warm-up, with random weights; against a per-superpixel masked-mean loop.

    python benchmarks/embed.py [--repeats=3]
"""

import functools
import resource
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from shls_jax.model.shls import SHLS, init_variables
from shls_jax.model.superfeatures import info_map, segment_means

FLAGS = flags.FLAGS
flags.DEFINE_integer('repeats', 3, 'timed calls per measurement, after one warm-up call')

SIZES = (((240, 427), 500), ((480, 854), 1000))


def grid_superpixels(height: int, width: int, count: int) -> np.ndarray:
  """[1, H, W] int32 map of about `count` rectangular superpixels, labels 1..N."""
  side = max(1, int(round((height * width / count) ** 0.5)))
  rows = np.arange(height) // side
  cols = np.arange(width) // side
  return (rows[:, None] * (cols.max() + 1) + cols[None, :] + 1).astype(np.int32)[None]


def pooling(features_l1, features_l4, spx, spx_l4, num_segments):
  """Info maps + segment means at both scales (the heads are negligible next to these)."""
  l1 = jnp.concatenate([features_l1, info_map(spx, num_segments)], -1)
  l4 = jnp.concatenate([features_l4, info_map(spx_l4, num_segments)], -1)
  return segment_means(l1, spx, num_segments)[0], segment_means(l4, spx_l4, num_segments)[0]


def masked_mean_loop(features: np.ndarray, spx: np.ndarray) -> np.ndarray:
  """Baseline: one boolean-mask mean per superpixel, as a direct port would do."""
  return np.stack([features[spx == n].mean(0) for n in range(1, int(spx.max()) + 1)])


def seconds(fn, repeats: int) -> float:
  jax.block_until_ready(fn())
  start = time.perf_counter()
  for _ in range(repeats):
    jax.block_until_ready(fn())
  return (time.perf_counter() - start) / repeats


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  variables = init_variables(jax.random.PRNGKey(0))
  rng = np.random.default_rng(0)
  print(
    f'{"size":>9} {"superpixels":>11} {"pooling s":>10} {"loop s":>8} {"speed-up":>8} '
    f'{"embed s":>8} {"frames/s":>8} {"peak RSS GiB":>12}'
  )
  for (h, w), count in SIZES:
    spx = grid_superpixels(h, w, count)
    cap = int(spx.max())
    image = jnp.asarray(rng.standard_normal((1, h, w, 3)), jnp.float32)
    embed = jax.jit(functools.partial(SHLS().apply, variables, method=SHLS.embed, num_segments=cap))
    out = embed(image, jnp.asarray(spx))
    f_l1 = out['feat_l1'][..., :64]
    f_l4 = out['feat_l4'][..., :256]
    pool = jax.jit(functools.partial(pooling, num_segments=cap))
    t_pool = seconds(lambda: pool(f_l1, f_l4, jnp.asarray(spx), out['spx_l4']), FLAGS.repeats)
    t_embed = seconds(lambda: embed(image, jnp.asarray(spx)), FLAGS.repeats)
    l1_np, spx_np = np.asarray(out['feat_l1'][0]), spx[0]
    start = time.perf_counter()
    masked_mean_loop(l1_np, spx_np)
    masked_mean_loop(np.asarray(out['feat_l4'][0]), np.asarray(out['spx_l4'][0]))
    t_loop = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(
      f'{h:>4}x{w:<4} {cap:>11} {t_pool:>10.4f} {t_loop:>8.3f} {t_loop / t_pool:>8.1f} '
      f'{t_embed:>8.3f} {1 / t_embed:>8.2f} {peak:>12.2f}'
    )


if __name__ == '__main__':
  app.run(main)
