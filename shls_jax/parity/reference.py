"""A parity directory (`Reference`: recorded arrays and checkpoint variables) and the rules
that compare a recomputed stage with its recorded value (tolerances per kind of stage)."""

import dataclasses
import functools
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from shls_jax.checkpoints.torch_interop import load_torch_checkpoint
from shls_jax.model import shls

FLOAT_TOLERANCE = 1e-4
GRADIENT_TOLERANCE = 1e-3
GRADIENT_FLOOR = 1e-3
# The float64 iteration (`train64.*`) against ours in float64. Measured: at most 1.0e-8 (v1) and
# 7.6e-9 (v2) on every loss, logit and gradient; what is left there is the float32 of the
# reference's own casts (host memory, attention maps, first mask, previous logits). 1e-6 is
# a thousand times below the float32 gradient tolerance and the float32 noise that v2 shows
# (up to 5.5e-2), so a float32 effect cannot hide an error here.
FLOAT64_TOLERANCE = 1e-6
# A float32 gradient may miss its reference by GRADIENT_TOLERANCE plus this multiple of the
# measured float32 noise of both sides (reference: stored train.grad vs train64.grad; ours: our
# float32 vs our float64 run). By the triangle inequality a factor of 1 already covers two
# correct computations; 2 leaves room for the float64 residual.
NOISE_FACTOR = 2.0


@dataclasses.dataclass
class Reference:
  """A parity directory: its recorded arrays and the network variables of its checkpoint."""

  directory: Path
  vectors: Dict[str, np.ndarray]
  variables: dict

  @classmethod
  def load(cls, directory) -> 'Reference':
    directory = Path(directory)
    for name in ('vectors.npz', 'checkpoint.pth'):
      if not (directory / name).is_file():
        raise FileNotFoundError(f'{directory / name} does not exist')
    with np.load(directory / 'vectors.npz') as f:
      vectors = {k: f[k] for k in f.files}
    variables = jax.tree_util.tree_map(
      jnp.asarray, load_torch_checkpoint(directory / 'checkpoint.pth')
    )
    return cls(directory, vectors, variables)

  def capacity(self) -> int:
    """One static superpixel capacity for every map of the directory."""
    maps = [self.vectors['spx'], self.vectors['pools.spx_merged0']]
    return max(int(m.max()) for m in maps)

  @functools.cached_property
  def embed(self) -> Callable:
    """Jitted eval-mode embedding: (image [1, H, W, 3], spx [1, H, W]) -> SHLS.embed dict."""
    apply = functools.partial(shls.embed, self.variables, num_segments=self.capacity())
    return jax.jit(lambda image, spx: apply(image, spx)[0])


def to_nchw(x) -> np.ndarray:
  return np.moveaxis(np.asarray(x), -1, 1)


def to_nhwc(x) -> jnp.ndarray:
  return jnp.asarray(np.moveaxis(np.asarray(x), 1, -1))


def is_gradient(key: str) -> bool:
  return key.startswith(('train.grad', 'train64.grad.'))


def gradient_floor(vectors) -> float:
  """GRADIENT_FLOOR x the largest |gradient| stored for any parameter: gradients of biases that
  feed a train-mode BatchNorm are rounding noise, so they are compared against this floor."""
  largest = max(
    (float(np.max(np.abs(v))) for k, v in vectors.items() if k.startswith('train.grad.')),
    default=0.0,
  )
  return GRADIENT_FLOOR * largest


def relative_error(ours, reference, floor: float = 1e-6) -> float:
  """max |ours - reference| / max(max |reference|, floor)."""
  ours, reference = np.asarray(ours, np.float64), np.asarray(reference, np.float64)
  return float(
    np.max(np.abs(ours - reference), initial=0.0)
    / max(np.max(np.abs(reference), initial=0.0), floor, 1e-30)
  )


def gradient_bound(key: str, outputs, vectors) -> Tuple[float, str]:
  """(tolerance, how it was built) of the float32 gradient `key` ('train.grad.<param>').

  With the float64 iteration in both `vectors` and `outputs` ('train64.grad.<param>'), the bound
  is GRADIENT_TOLERANCE + NOISE_FACTOR x (reference noise + our noise), each noise the distance
  of a side's float32 gradient from its own float64 one, relative to the same denominator as
  the comparison. Without it, GRADIENT_TOLERANCE alone.
  """
  key64 = key.replace('train.', 'train64.', 1)
  if key64 not in vectors or key64 not in outputs:
    return GRADIENT_TOLERANCE, ''
  reference = vectors[key]
  denominator = max(float(np.max(np.abs(reference), initial=0.0)), gradient_floor(vectors))
  ref_noise = relative_error(reference, vectors[key64], denominator)
  our_noise = relative_error(outputs[key], outputs[key64], denominator)
  bound = GRADIENT_TOLERANCE + NOISE_FACTOR * (ref_noise + our_noise)
  return bound, f'bound {bound:9.3e} (noise ref {ref_noise:8.2e} ours {our_noise:8.2e})'


def compare_stage(key: str, outputs, vectors) -> Tuple[bool, str]:
  """(passed, report line) of the recomputed stage `outputs[key]` against `vectors[key]`.

  Integer stages must be identical. Float stages: max relative error below FLOAT_TOLERANCE
  (FLOAT64_TOLERANCE for the float64 iteration, `train64.*`). Gradients are relative to
  `gradient_floor`; float32 ones are held to `gradient_bound` (which reads the float64 stages
  of `outputs` and `vectors`), float64 ones to FLOAT64_TOLERANCE.
  """
  ours, reference = np.asarray(outputs[key]), np.asarray(vectors[key])
  if ours.shape != reference.shape:
    return False, f'{key:40s} shape {ours.shape} != reference {reference.shape}  FAIL'
  if np.issubdtype(reference.dtype, np.integer):
    diff = int(np.count_nonzero(ours != reference))
    return diff == 0, f'{key:40s} differing {diff:12d}  {"PASS" if diff == 0 else "FAIL"}'
  float64 = key.startswith('train64.')
  note = ''
  if is_gradient(key):
    err, what = relative_error(ours, reference, gradient_floor(vectors)), 'grad rel err'
    tolerance, note = (FLOAT64_TOLERANCE, '') if float64 else gradient_bound(key, outputs, vectors)
  else:
    err, what = relative_error(ours, reference), 'max rel err'
    tolerance = FLOAT64_TOLERANCE if float64 else FLOAT_TOLERANCE
  ok = err < tolerance
  return ok, f'{key:40s} {what} {err:10.3e}  {"PASS" if ok else "FAIL"}  {note}'.rstrip()


def failures(outputs: Dict[str, np.ndarray], vectors) -> List[str]:
  """Report lines of the stages in `outputs` that `compare_stage` does not pass."""
  return [line for key in outputs for ok, line in [compare_stage(key, outputs, vectors)] if not ok]
