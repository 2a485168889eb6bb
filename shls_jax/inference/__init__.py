"""Video inference: the propagation engine (`propagation`) and fast mode's static crops
(`static_crops`)."""

from shls_jax.inference.propagation import Propagator
from shls_jax.inference.propagation import VideoResult

__all__ = ['Propagator', 'VideoResult']
