"""Spherical k-means of one class' memory and the nearest-centroid score of queries (faiss)."""

import faiss
import numpy as np

from shls_jax.memory import rules
from shls_jax.memory.faiss_index import inner_product_index, use_gpu
from shls_jax.memory.knn import l2_normalise

NUM_ITERATIONS = 300
NUM_RESTARTS = 10
SEED = 1234


def fit_spherical_kmeans(
  x: np.ndarray, num_centroids: int = rules.NUM_CENTROIDS, init_centroids: np.ndarray | None = None
) -> np.ndarray:
  """Unit-norm centroids of the L2-normalised rows of `x`.

  faiss k-means with 300 iterations, 10 restarts, seed 1234, at least 1 point per centroid
  (faiss subsamples, seeded, beyond 256 points per centroid). A class with fewer rows than
  centroids is padded with copies of the mean of its normalised rows.

  Args:
    x: [M, D] float superfeatures of one class, M >= 1.
    num_centroids: k.
    init_centroids: optional [k, D] float32 starting centroids (a refit from a previous fit).

  Returns:
    [k, D] float32 centroids.
  """
  if x.ndim != 2 or x.shape[0] == 0:
    raise ValueError(f'k-means needs a non-empty [M, D] array; got shape {x.shape}')
  points = l2_normalise(x)
  if points.shape[0] < num_centroids:
    points = np.pad(points, ((0, num_centroids - points.shape[0]), (0, 0)), mode='mean')
  kmeans = faiss.Kmeans(
    points.shape[1],
    num_centroids,
    niter=NUM_ITERATIONS,
    nredo=NUM_RESTARTS,
    min_points_per_centroid=1,
    spherical=True,
    seed=SEED,
    gpu=use_gpu(),
  )
  if init_centroids is not None:
    init_centroids = np.ascontiguousarray(init_centroids, dtype=np.float32)
    if init_centroids.shape != (num_centroids, points.shape[1]):
      raise ValueError(
        f'init_centroids must be [{num_centroids}, {points.shape[1]}]; got {init_centroids.shape}'
      )
  kmeans.train(np.ascontiguousarray(points), init_centroids=init_centroids)
  return np.asarray(kmeans.centroids, dtype=np.float32)


def nearest_centroid_scores(centroids: np.ndarray, queries: np.ndarray) -> np.ndarray:
  """[N] float32 inner product of each L2-normalised query ([N, D]) with its nearest centroid."""
  sims, _ = inner_product_index(centroids).search(l2_normalise(queries), 1)
  return sims[:, 0]
