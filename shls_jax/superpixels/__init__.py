"""Superpixels: SLIC, ISEC and the JAX SLIC's label maps ([H, W] int32, dense 1..N), their PNG
storage, the per-frame sources of evaluation, and the pools of superpixels under a class map.

`compute(image, method)` is the host entry point and `slic_jax.segment` the traced one (imported
on its own: it needs JAX); `label_io` reads and writes precomputed maps;
`frame_superpixels` picks a frame's source from a config; `pools` gives each superpixel's class
and merges frame-0 superpixels with an annotation.
"""

from shls_jax.superpixels import isec, pools, slic
from shls_jax.superpixels.label_io import dense_labels, label_path, read_labels, write_labels
from shls_jax.superpixels.methods import METHODS, as_rgb, compute
from shls_jax.superpixels.sources import SOURCES, frame_superpixels, resolve

__all__ = [
  'METHODS',
  'SOURCES',
  'as_rgb',
  'compute',
  'dense_labels',
  'frame_superpixels',
  'isec',
  'label_path',
  'pools',
  'read_labels',
  'resolve',
  'slic',
  'write_labels',
]
