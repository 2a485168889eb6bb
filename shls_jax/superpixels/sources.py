"""Where a frame's superpixels come from at evaluation: computed (SLIC, ISEC) or read from
precomputed maps (`<root>/<sequence>/<frame>.png`, see `label_io`)."""

import ml_collections
import numpy as np

from shls_jax.io import masks as mask_io
from shls_jax.superpixels import label_io
from shls_jax.superpixels.methods import compute

SOURCES = ('slic', 'isec', 'precomputed')


def frame_superpixels(
  frame: np.ndarray, sequence: str, frame_name: str, spx_config: ml_collections.ConfigDict
) -> np.ndarray:
  """Superpixels of one frame.

  Args:
    frame: [H, W, 3] uint8 RGB frame (at the working size).
    sequence, frame_name: where it comes from (the precomputed map's path).
    spx_config: `method` ('slic', 'isec' or 'precomputed'), `slic_segments` (SLIC), `root`
      (precomputed maps `<root>/<sequence>/<frame>.png`, resized nearest to the frame size).

  Returns:
    [H, W] int32 labels, dense 1..N.
  """
  method = spx_config.method
  if method not in SOURCES:
    raise ValueError(f'unknown superpixel source {method!r}: expected one of {SOURCES}')
  if method == 'slic':
    return compute(frame, method, n_segments=spx_config.slic_segments).astype(np.int32)
  if method == 'isec':
    return compute(frame, method).astype(np.int32)
  if not spx_config.root:
    raise ValueError("superpixels 'precomputed' need eval.superpixels.root, the folder of maps")
  path = label_io.label_path(spx_config.root, sequence, frame_name)
  if not path.is_file():
    raise FileNotFoundError(
      f'precomputed superpixel map {path} is missing: compute the maps '
      'with `python -m shls_jax.tools.superpixels`'
    )
  spx = label_io.read_labels(path)
  if spx.shape != frame.shape[:2]:
    # Nearest resizing can drop small superpixels; renumbering keeps labels dense.
    spx = label_io.dense_labels(mask_io.resize_ids(spx, frame.shape[:2]))
  return spx.astype(np.int32)
