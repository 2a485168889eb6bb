"""Host-side memory of superfeatures (numpy + faiss): kNN vote, per-class k-means, ROIs."""

from shls_jax.memory.clustering import Memory
from shls_jax.memory.clustering import MemoryPrediction
from shls_jax.memory.clustering import confident_superpixels
from shls_jax.memory.clustering import fit
from shls_jax.memory.clustering import memorise_confident
from shls_jax.memory.clustering import predict
from shls_jax.memory.clustering import update
