"""The reference's memory rules as numbers, shared by the host memory (numpy + faiss) and its
on-device twin (JAX); importing them needs neither faiss nor JAX."""

import numpy as np

# kNN vote: neighbour i (0-based, in similarity order) votes with weight VOTE_RATIO**i.
NUM_NEIGHBOURS = 2
VOTE_RATIO = 0.5
# Spherical k-means centroids per class.
NUM_CENTROIDS = 2
# Per-class memory cap, in multiples of the frame-0 superfeature count; on overflow a class keeps
# this many multiples of its own frame-0 count from its oldest entries.
MEMORY_CAP_FACTOR = 10
KEPT_INITIAL_FACTOR = 5
# A superpixel is confident when its mean log-odds reach this fraction of its class' mean.
CONFIDENCE_RATIO = 0.4
# Pre-segmentation cleaning: components overlapping the previous mask by more than this share.
MIN_OVERLAP = 0.05
# ROIs: an axis shorter than this share of the frame becomes full-range; widening per side, as a
# share of the extent, at inference and from an annotation.
MIN_EXTENT = 0.05
INFERENCE_WIDENING = 0.15
ANNOTATION_WIDENING = 0.25


def vote_weights(num_neighbours: int = NUM_NEIGHBOURS, ratio: float = VOTE_RATIO) -> np.ndarray:
  """[k] float32 weights ratio**i of the neighbours in similarity order."""
  return (ratio ** np.arange(num_neighbours)).astype(np.float32)


# Convex hulls on the device: support half-planes per hull (`device_rules.clean_preseg`).
HULL_DIRECTIONS = 64
