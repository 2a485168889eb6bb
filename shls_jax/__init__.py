"""shls-jax: SHLS video object segmentation (superfeatures + memory clustering) in JAX/Flax."""

__version__ = '0.1.0'
