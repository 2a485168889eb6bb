"""Where a frame's superpixels come from at evaluation: computed on the host (SLIC, ISEC), read from
precomputed maps (`<root>/<sequence>/<frame>.png`, see `label_io`), or computed on the device by
the propagation engine itself ('slic-jax', `slic_jax`), in which case a frame comes without them.
"""

import ml_collections
import numpy as np

from shls_jax.io import masks as mask_io
from shls_jax.superpixels import label_io
from shls_jax.superpixels.methods import compute

SOURCES = ('slic', 'isec', 'precomputed', 'slic-jax')
# 'auto': the JAX SLIC in fast mode on an accelerator, where it runs inside the frame step;
# scikit-image's elsewhere (exact mode reproduces the reference, and on a CPU scikit-image's is
# the faster one and runs ahead of the engine on worker threads).
AUTO = 'auto'


def resolve(method: str, mode: str, accelerator: bool) -> str:
  """The source that `method` names for inference mode `mode` ('auto' resolved) on a JAX
  backend that is an accelerator or not."""
  if method == AUTO:
    return 'slic-jax' if mode == 'fast' and accelerator else 'slic'
  if method not in SOURCES:
    raise ValueError(f'unknown superpixel source {method!r}: expected one of {SOURCES + (AUTO,)}')
  return method


def frame_superpixels(
  frame: np.ndarray,
  sequence: str,
  frame_name: str,
  spx_config: ml_collections.ConfigDict,
  mode: str = 'exact',
  accelerator: bool = False,
) -> np.ndarray | None:
  """Superpixels of one frame.

  Args:
    frame: [H, W, 3] uint8 RGB frame (at the working size).
    sequence, frame_name: where it comes from (the precomputed map's path).
    spx_config: `method` (`SOURCES` or 'auto'), `slic_segments` (SLIC), `root` (precomputed
      maps `<root>/<sequence>/<frame>.png`, resized nearest to the frame size).
    mode, accelerator: the inference mode and whether JAX runs on an accelerator, which 'auto'
      depends on.

  Returns:
    [H, W] int32 labels, dense 1..N; None for 'slic-jax' (the engine computes them).
  """
  method = resolve(spx_config.method, mode, accelerator)
  if method == 'slic-jax':
    return None
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
