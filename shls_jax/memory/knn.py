"""k-nearest-neighbour vote of the memory: predicted class and per-class scores per superfeature.

Superfeatures are compared by cosine similarity (inner product of L2-normalised vectors, exact
faiss search, so equal similarities keep faiss' order). Neighbour i (0-based, in similarity
order) votes with weight ratio**i. Classes are 1..C (1 = background); score column j is class
j + 1.
"""

import faiss
import numpy as np

from shls_jax.memory import rules
from shls_jax.memory.faiss_index import inner_product_index


def l2_normalise(x: np.ndarray) -> np.ndarray:
  """Rows of `x` ([N, D]) scaled to unit L2 norm as float32; zero rows stay zero."""
  x = np.array(x, dtype=np.float32, order='C', copy=True)
  faiss.normalize_L2(x)
  return x


def knn_search(
  memory: np.ndarray, queries: np.ndarray, num_neighbours: int = rules.NUM_NEIGHBOURS
) -> tuple[np.ndarray, np.ndarray]:
  """Nearest memory entries of each query by cosine similarity.

  Args:
    memory: [M, D] superfeatures held in memory (normalised here).
    queries: [N, D] superfeatures to classify (normalised here).
    num_neighbours: k; the memory must hold at least k entries.

  Returns:
    (similarities [N, k] float32 in decreasing order, memory row indices [N, k] int64).
  """
  if memory.ndim != 2 or queries.ndim != 2 or memory.shape[1] != queries.shape[1]:
    raise ValueError(f'memory {memory.shape} and queries {queries.shape} must be [M, D] and [N, D]')
  if memory.shape[0] < num_neighbours:
    raise ValueError(f'memory holds {memory.shape[0]} entries, fewer than k = {num_neighbours}')
  index = inner_product_index(l2_normalise(memory))
  sims, ids = index.search(l2_normalise(queries), num_neighbours)
  return sims, ids


def weighted_vote(neighbour_labels: np.ndarray, weights: np.ndarray, num_cls: int) -> np.ndarray:
  """Weighted mode of the neighbours' classes.

  Args:
    neighbour_labels: [N, k] int classes 1..num_cls of the neighbours, in similarity order.
    weights: [k] vote weights.
    num_cls: number of classes C, background included.

  Returns:
    [N] int32 winning class (ties go to the smallest class).
  """
  classes = np.arange(1, num_cls + 1)
  votes = ((neighbour_labels[:, None, :] == classes[None, :, None]) * weights).sum(-1)
  return (np.argmax(votes, axis=1) + 1).astype(np.int32)


def class_scores(
  sims: np.ndarray, neighbour_labels: np.ndarray, weights: np.ndarray, num_cls: int
) -> np.ndarray:
  """Per-class kNN score: weighted mean of the sorted similarities of that class' neighbours.

  For class c, the neighbours' similarities with those of other classes set to 0 are sorted in
  decreasing order and averaged with `weights`.

  Args:
    sims: [N, k] float32 similarities of the neighbours.
    neighbour_labels: [N, k] int classes of the neighbours.
    weights: [k] float32 vote weights.
    num_cls: number of classes C, background included.

  Returns:
    [N, C] float32, column j = class j + 1.
  """
  classes = np.arange(1, num_cls + 1)
  own = neighbour_labels[:, None, :] == classes[None, :, None]
  masked = np.where(own, sims[:, None, :], np.float32(0))
  ranked = -np.sort(-masked, axis=-1)
  return ((ranked * weights).sum(-1) / weights.sum()).astype(np.float32)
