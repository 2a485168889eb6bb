"""Where faiss runs: a GPU when the faiss build supports one and a GPU is present, else the CPU."""

import functools

import faiss
import numpy as np


@functools.lru_cache(maxsize=None)
def use_gpu() -> bool:
  """True when this faiss build has GPU support and sees at least one GPU."""
  return hasattr(faiss, 'StandardGpuResources') and faiss.get_num_gpus() > 0


@functools.lru_cache(maxsize=None)
def _gpu_resources():
  # One resource object per process: creating them is slow and they hold scratch memory.
  return faiss.StandardGpuResources()


def inner_product_index(vectors: np.ndarray) -> faiss.Index:
  """Exact inner-product index over `vectors` ([M, D] float32), on the GPU when available."""
  vectors = np.ascontiguousarray(vectors, dtype=np.float32)
  index = faiss.IndexFlatIP(vectors.shape[1])
  if use_gpu():
    index = faiss.index_cpu_to_gpu(_gpu_resources(), 0, index)
  index.add(vectors)
  return index
