"""4-connected components of a label map at static shapes (jit-able), for the JAX superpixels and
the frame rules of the on-device memory.

Each pixel ends with the flat index (row * W + col) of the first pixel, in raster order, of its
component: the smallest index reachable through 4-neighbours of equal label. Computed by
propagating that minimum along whole runs of equal labels, the rows' and then the columns' (a
segment minimum per run, so one round crosses a run of any length), and jumping along the
pointers it forms (each pixel's root index points at a pixel whose own root is at least as
small), until nothing moves; the rounds are bounded (`max_iterations`) so that the compiled
program has a static worst case, and their count is returned so that a caller can tell whether
the bound was reached.
"""

import jax
import jax.numpy as jnp


def _runs(labels: jax.Array) -> jax.Array:
  """[H * W] int32 run of each pixel (row-major): runs are the maximal stretches of equal labels
  along a row, numbered from 0."""
  height, width = labels.shape
  starts = jnp.ones((height, width), bool).at[:, 1:].set(labels[:, 1:] != labels[:, :-1])
  return (jnp.cumsum(starts.reshape(-1)) - 1).astype(jnp.int32)


def _run_min(roots: jax.Array, runs: jax.Array) -> jax.Array:
  """Each pixel's root [H, W] replaced by the minimum over its run (`_runs`)."""
  smallest = jax.ops.segment_min(roots.reshape(-1), runs, num_segments=runs.shape[0])
  return smallest[runs].reshape(roots.shape)


def connected_components(
  labels: jax.Array, max_iterations: int = 256
) -> tuple[jax.Array, jax.Array]:
  """Roots of the 4-connected components of equal label.

  Args:
    labels: [H, W] int label map (any values; components never cross a change of label).
    max_iterations: static bound on the propagation rounds (each a row sweep, a column sweep
      and two pointer jumps); a component that needs more keeps larger indices in places.

  Returns:
    (roots [H, W] int32: the flat index of the component's first pixel in raster order;
    rounds: int32 scalar, rounds run, < max_iterations when the result is exact).
  """
  height, width = labels.shape
  start = jnp.arange(height * width, dtype=jnp.int32).reshape(height, width)
  rows, columns = _runs(labels), _runs(labels.T)

  def jump(roots):
    flat = roots.reshape(-1)
    return flat[flat].reshape(roots.shape)

  def body(state):
    roots, _, rounds = state
    new = _run_min(_run_min(roots, rows).T, columns).T
    new = jump(jump(new))
    return new, jnp.any(new != roots), rounds + 1

  def cond(state):
    _, changed, rounds = state
    return changed & (rounds < max_iterations)

  roots, _, rounds = jax.lax.while_loop(cond, body, (start, jnp.array(True), jnp.int32(0)))
  return roots, rounds


def dense_ids(roots: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Component roots [H, W] (flat pixel indices) renumbered 1..N in the order of their roots.

  Returns:
    (ids [H, W] int32 dense 1..N, N as an int32 scalar).
  """
  flat = roots.reshape(-1)
  used = jnp.zeros(flat.shape, jnp.int32).at[flat].set(1)
  ranks = jnp.cumsum(used)
  return ranks[flat].reshape(roots.shape).astype(jnp.int32), ranks[-1].astype(jnp.int32)
