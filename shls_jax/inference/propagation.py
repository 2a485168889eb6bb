"""The propagation engine: segments a video from its first-frame mask, frame by frame.

Frame 0: the superpixels are merged with the annotation, embedded, and the memory is fitted on
their pools; a memory prediction with the annotation gives the frame-0 ROIs and attention maps;
the previous logits are the annotation's one-hot. Frame t >= 1: embedding, memory prediction with
the previous mask, one decoder pass per object on its first/previous/current inputs, paste-back,
soft aggregation, mask = argmax + 1; then (except after the last frame) the confident
superpixels, judged against that mask, join the memory under their pre-segmentation pools.
Each step is its own method (`embed`, `first_frame`, `predict`, `decode`, `remember`) so that a
caller can run one frame from recorded state. Objects given at a later frame (YouTube-VOS) join
there (`join`, an extension of the reference); each object decodes with the first-frame state of
the frame where it was given (`FirstFrame`).

Modes (`config.mode`):
  exact: reproduces the reference. Each object's crops have its ROI's own size, so the decoder
    compiles once per new crop shape (seconds each on CPU; most frames bring a new shape).
  fast: static shapes. Each object's inputs are exact mode's, at the current ROI size padded to
    a multiple of 4, placed at the top-left of a zero canvas whose sides are buckets
    (`config.canvas_sizes`, `static_crops.canvas_inputs`); the ROI geometry is traced, all
    objects of a frame share the largest canvas among them and are decoded at once with
    `jax.vmap` over a power-of-two object capacity, and each output is read back at its ROI
    (`static_crops.paste_canvas`). The decoder compiles once per (canvas, object capacity)
    pair, so after the first frames of the first videos nothing recompiles. The results deviate
    from exact mode only where the decoder's receptive field reaches the canvas beyond exact
    mode's own padding, i.e. near the bottom/right ROI edges when the bucket is larger than the
    padded ROI: mean per-frame mask IoU against exact mode 0.990 on the first 4 frames of DAVIS
    blackswan at 240x427 (500 SLIC superpixels, v1 checkpoint; 160x192 and 160x256 canvases for
    156x192 and 156x236 padded ROIs), 1.0 with canvases equal to the padded ROIs. The decoder's
    time grows with the canvas area (at 480p, 320x512 for a 312x464 padded ROI) and dominates a
    480p frame; ROIs longer than `config.max_canvas` are decoded downscaled (see
    `defaults.get_config` for the measured quality/speed trade-off).
Both modes pad the superpixel count to a static capacity (a multiple of
`config.superpixel_bucket`, at least `config.superpixel_capacity` in fast mode); superfeatures
of labels 1..N do not depend on it.

Conventions: frames are [H, W, 3]; class maps are [H, W] int with 1 = background, 2.. = objects,
0 = removed from a pre-segmentation; logits/log-odds channel j = class j + 1; boxes are
[rmin, rmax, cmin, cmax] with exclusive max; superpixel maps are dense 1..N per frame.
"""

import collections
import dataclasses
import functools
import importlib
import itertools
import time
from typing import Any, Iterator, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np
import tqdm

from shls_jax.crops import object_crops, static_crops
from shls_jax.memory import rois
from shls_jax.memory.frame_rules import MemoryPrediction
from shls_jax.model import decoder, shls
from shls_jax.superpixels import pools

MODES = ('exact', 'fast')
# `config.memory`: the module holding each memory; both offer fit, predict, confident_superpixels,
# memorise_confident and add_classes with the same arguments. Imported on use: faiss is only the host's need.
MEMORIES = {
  'faiss': 'shls_jax.memory.faiss_memory',
  'device': 'shls_jax.memory.jax_memory',
}
# 255 is DAVIS' "void" label, never an object id.
VOID = 255
# The lowest aggregated log-odds: the soft aggregation's clamped probability.
LOW_LOGODDS = np.float32(np.log(decoder.PROBABILITY_CLAMP / (1 - decoder.PROBABILITY_CLAMP)))


@dataclasses.dataclass
class VideoResult:
  """Output of `Propagator.run`.

  Attributes:
    masks: [T, H, W] uint8 DAVIS object ids (0 = background); frame 0 is the given mask.
    presegs: [T, H, W] int32 memory pre-segmentations as class labels (1 = background, class
      k + 1 = the k-th object id present in the first mask, 0 = removed); frame 0 is the given
      mask as class labels.
    logodds: optional [T, H, W, C] float32 aggregated log-odds (channel j = class j + 1; frame
      0 = the one-hot annotation); only with `config.keep_logodds`.
  """

  masks: np.ndarray
  presegs: np.ndarray
  logodds: Optional[np.ndarray] = None


class FrameResult(NamedTuple):
  """One frame of `Propagator.stream`: mask [H, W] uint8 object ids, preseg [H, W] int32 class
  labels, logodds [H, W, C] float32 (only with `config.keep_logodds`, else None)."""

  mask: np.ndarray
  preseg: np.ndarray
  logodds: Optional[np.ndarray]


@dataclasses.dataclass
class Embedding:
  """One frame's network features: l1 [H, W, 67], l4 [h4, w4, 259] (device arrays),
  superfeatures [N, 32] float32 (host)."""

  l1: jax.Array
  l4: jax.Array
  superfeatures: np.ndarray


@dataclasses.dataclass
class FirstFrame:
  """What the decoder calls of some objects take from the frame where they were given: frame 0
  for the objects of the first mask, the first annotated frame of objects that appear later.

  Attributes:
    l1, l4: that frame's features (on its superpixels merged with the annotation).
    planes: [H, W, K_g] float32 the objects' given masks.
    boxes: [K_g, 4] int32 their ROIs in that frame (annotation boxes).
    first_object: index k (class k + 2) of the first of them; they are objects
      first_object .. first_object + K_g - 1.
  """

  l1: jax.Array
  l4: jax.Array
  planes: jax.Array
  boxes: np.ndarray
  first_object: int = 0

  @property
  def objects(self) -> slice:
    return slice(self.first_object, self.first_object + len(self.boxes))


def first_of(firsts: Sequence[FirstFrame], k: int) -> Tuple[FirstFrame, int]:
  """The `FirstFrame` holding object k, and k's position in it."""
  for first in firsts:
    if first.first_object <= k < first.objects.stop:
      return first, k - first.first_object
  raise ValueError(f'object {k} has no first-frame state')


@dataclasses.dataclass
class Carry:
  """State handed from frame t to frame t + 1.

  Attributes:
    memory: the memory after frame t's update (the state of `config.memory`'s module).
    l1, l4: frame t's features.
    logodds: [H, W, C] float32 frame t's log-odds (frame 0: the one-hot annotation).
    mask: [H, W] int32 class map of frame t (frame 0: the annotation).
    boxes: [K, 4] int32 frame t's ROIs.
    attmaps: K arrays [h_k, w_k, 4] float32, frame t's attention maps cropped to its ROIs.
    attention: [K, H, W, 4] float32 full-frame attention maps (fast mode only, else None).
  """

  memory: Any
  l1: jax.Array
  l4: jax.Array
  logodds: np.ndarray
  mask: np.ndarray
  boxes: np.ndarray
  attmaps: List[np.ndarray]
  attention: Optional[jax.Array] = None


@dataclasses.dataclass
class FrameOutput:
  """Result of one frame t >= 1: the memory prediction, log-odds [H, W, C] float32, mask
  [H, W] int32 (argmax + 1), confident flags [N] bool (None after the last frame)."""

  prediction: MemoryPrediction
  logodds: np.ndarray
  mask: np.ndarray
  confident: Optional[np.ndarray]


def normalise(frames, mean, std) -> np.ndarray:
  """uint8 RGB [..., 3] -> float32 (x / 255 - mean) / std."""
  frames = np.asarray(frames)
  if frames.dtype != np.uint8:
    raise ValueError(f'frames must be uint8 RGB, got dtype {frames.dtype}')
  return (
    frames.astype(np.float32) / np.float32(255.0) - np.asarray(mean, np.float32)
  ) / np.asarray(std, np.float32)


def _round_up(n: int, multiple: int) -> int:
  return -(-n // multiple) * multiple


def _object_capacity(num_objects: int) -> int:
  """Power of two >= num_objects: few distinct compiled object counts across videos."""
  return 1 << max(num_objects - 1, 0).bit_length()


def full_frame_attention(spx: np.ndarray, prediction: MemoryPrediction) -> np.ndarray:
  """[K, H, W, 4] float32 attention maps of every object over the whole frame."""
  height, width = spx.shape
  full = np.tile(np.array([[0, height, 0, width]], np.int32), (len(prediction.boxes), 1))
  return np.stack(rois.attention_maps(spx, prediction.knn_scores, prediction.cent_scores, full))


# How many times each jitted step was traced ('embed', 'decode', 'aggregate'), for all
# engines together (they share compilations); it grows only on recompilation.
TRACE_COUNTS = collections.Counter()


@functools.partial(jax.jit, static_argnums=3)
def _embed(variables, image, spx, num_segments):
  TRACE_COUNTS['embed'] += 1
  return shls.embed(variables, image, spx, num_segments=num_segments)[0]


def _decode_object_traced(variables, inputs):
  """Decoder logits [h, w, 2] of one object's `ObjectInputs`."""
  TRACE_COUNTS['decode'] += 1
  return shls.decode_object(variables, inputs)[0]


_decode_object = jax.jit(_decode_object_traced)


@jax.jit
def _aggregate(frame_logits):
  TRACE_COUNTS['aggregate'] += 1
  return decoder.aggregate_objects(frame_logits)


def _decode_probs_traced(canvas, variables, first, prev, cur, extents, valid):
  """Fast-mode decoding of a padded object batch on one static canvas (ch, cw).

  first, prev, cur: `CropSource`s whose boxes, planes and attention maps have a leading object
  axis [capacity] (the features are shared); extents: [capacity, 2] decode sizes; valid:
  [capacity] bool. Returns object probabilities [capacity, H, W], 0 for padding objects.
  """
  frame_hw = cur.l1.shape[:2]

  def one(first, prev, cur, extent):
    inputs = static_crops.canvas_inputs(first, prev, cur, canvas=canvas, extent=extent)
    return static_crops.paste_canvas(
      _decode_object_traced(variables, inputs), cur.box, frame_hw, extent
    )

  per_object = object_crops.CropSource(l1=None, l4=None, box=0, plane=0, attention=0)
  frame_logits = jax.vmap(one, in_axes=(per_object, per_object, per_object, 0))(
    first, prev, cur, extents
  )
  return jax.nn.softmax(frame_logits, axis=-1)[..., 1] * valid[:, None, None]


_decode_probs = jax.jit(_decode_probs_traced, static_argnums=0)


@functools.partial(jax.jit, static_argnums=0)
def _decode_all(canvas, variables, first, prev, cur, extents, valid):
  """`_decode_probs_traced` aggregated: log-odds [H, W, capacity + 1]."""
  return decoder.soft_aggregate(
    _decode_probs_traced(canvas, variables, first, prev, cur, extents, valid)
  )


_soft_aggregate = jax.jit(decoder.soft_aggregate)


def with_given_masks(logodds: np.ndarray, given: np.ndarray) -> np.ndarray:
  """Log-odds of a frame where some objects' masks are given: [H, W, C] and a class map
  [H, W] (0 = not given) -> [H, W, C'], C' = max(C, largest given class).

  As if the soft aggregation had each given object's probability equal to its given mask and
  every other object's probability zero on the given pixels: given pixels go to their object,
  the prediction of the other pixels is kept, and a given object that was tracked already
  (class <= C) loses its predicted pixels outside its mask.
  """
  num_cls = max(logodds.shape[-1], int(given.max()))
  out = np.full(logodds.shape[:2] + (num_cls,), LOW_LOGODDS, np.float32)
  out[..., : logodds.shape[-1]] = logodds
  covered = given > 0
  classes = np.unique(given[covered])
  reset = classes[classes <= logodds.shape[-1]]
  if reset.size:
    kept = np.setdiff1d(np.arange(2, logodds.shape[-1] + 1), reset)
    background = np.prod(1 - 1 / (1 + np.exp(-logodds[..., kept - 1])), axis=-1)
    background = np.clip(background, decoder.PROBABILITY_CLAMP, 1 - decoder.PROBABILITY_CLAMP)
    out[..., 0] = np.log(background / (1 - background))
  out[covered] = LOW_LOGODDS
  for cls in classes:
    out[..., cls - 1] = np.where(given == cls, -LOW_LOGODDS, LOW_LOGODDS)
  return out


class Propagator:
  """Semi-supervised propagation of a first-frame mask through a video.

  Attributes:
    timings: seconds spent per stage ('embed', 'memory', 'decode', 'aggregation') since
      construction (device work is waited for at each stage's end).
    canvases: fast mode: frames decoded per canvas (ch, cw) since construction; the decoder
      compiles at most once per canvas and object capacity.
  """

  def __init__(self, variables, config):
    """variables: SHLS {'params', 'batch_stats'}; config: see `defaults.get_config`."""
    if config.mode not in MODES:
      raise ValueError(f'inference mode must be one of {MODES}, got {config.mode!r}')
    if config.mode == 'fast' and any(
      s < object_crops.MULTIPLE or s % object_crops.MULTIPLE for s in config.canvas_sizes
    ):
      raise ValueError(
        f'canvas_sizes {tuple(config.canvas_sizes)} must be positive multiples '
        f'of {object_crops.MULTIPLE}'
      )
    if config.mode == 'fast' and (
      config.max_canvas < 0 or config.max_canvas % object_crops.MULTIPLE
    ):
      raise ValueError(
        f'max_canvas {config.max_canvas} must be 0 or a positive multiple of '
        f'{object_crops.MULTIPLE}'
      )
    if config.memory not in MEMORIES:
      raise ValueError(f'inference memory must be one of {tuple(MEMORIES)}, got {config.memory!r}')
    self.memory = importlib.import_module(MEMORIES[config.memory])
    self.variables = variables
    self.config = config
    self.timings = collections.defaultdict(float)
    self.canvases = collections.Counter()

  # Steps ------------------------------------------------------------------------------------

  def capacity(self, num_spx: int) -> int:
    """Static superpixel capacity used for a frame with num_spx superpixels."""
    capacity = _round_up(num_spx, self.config.superpixel_bucket)
    if self.config.mode == 'fast':
      capacity = max(capacity, self.config.superpixel_capacity)
    return capacity

  def _fit(self, features, frame_pools, num_cls):
    if self.config.memory == 'device':
      return self.memory.fit(features, frame_pools, num_cls, self.config.device_kmeans_iterations)
    return self.memory.fit(features, frame_pools, num_cls)

  def embed(self, image, spx) -> Embedding:
    """Features of one frame: image [H, W, 3] float32 normalised, spx [H, W] int dense 1..N."""
    start = time.perf_counter()
    num_spx = int(np.max(spx))
    out = _embed(
      self.variables,
      jnp.asarray(image)[None],
      jnp.asarray(spx, jnp.int32)[None],
      self.capacity(num_spx),
    )
    superfeatures = np.asarray(out['superfeatures'][0, :num_spx])
    self.timings['embed'] += time.perf_counter() - start
    return Embedding(out['feat_l1'][0], out['feat_l4'][0], superfeatures)

  def first_frame(
    self, emb: Embedding, spx: np.ndarray, annotation: np.ndarray
  ) -> Tuple[FirstFrame, Carry]:
    """Memory fit and frame-0 ROIs/attention maps.

    Args:
      emb: embedding of frame 0 on `spx`.
      spx: [H, W] int frame-0 superpixels already merged with the annotation.
      annotation: [H, W] int class map, classes 1..C all present.
    """
    start = time.perf_counter()
    num_cls = int(annotation.max())
    mem = self._fit(emb.superfeatures, pools.mode_pools(spx, annotation), num_cls)
    mem, pred = self.memory.predict(mem, emb.superfeatures, spx, annotation, annotation=annotation)
    onehot = (annotation[..., None] == np.arange(1, num_cls + 1)).astype(np.float32)
    self.timings['memory'] += time.perf_counter() - start
    first = FirstFrame(emb.l1, emb.l4, jnp.asarray(onehot[..., 1:]), pred.boxes)
    carry = Carry(
      mem,
      emb.l1,
      emb.l4,
      onehot,
      np.asarray(annotation, np.int32),
      pred.boxes,
      pred.attmaps,
      self._attention(spx, pred),
    )
    return first, carry

  def predict(self, carry: Carry, emb: Embedding, spx: np.ndarray) -> Tuple[Any, MemoryPrediction]:
    """Memory prediction of frame t from the previous mask."""
    start = time.perf_counter()
    out = self.memory.predict(carry.memory, emb.superfeatures, spx, carry.mask)
    self.timings['memory'] += time.perf_counter() - start
    return out

  def decode(
    self,
    firsts: Sequence[FirstFrame],
    carry: Carry,
    emb: Embedding,
    spx: np.ndarray,
    pred: MemoryPrediction,
  ) -> Tuple[np.ndarray, Optional[jax.Array]]:
    """Aggregated log-odds [H, W, C] float32 of frame t, and (fast mode) its full-frame
    attention maps [K, H, W, 4] for the next frame. `firsts` hold every object's first-frame
    state, in object order."""
    if self.config.mode == 'exact':
      return self._decode_exact(firsts, carry, emb, pred), None
    start = time.perf_counter()
    attention = self._attention(spx, pred)
    num_objects = len(pred.boxes)
    extents = static_crops.decode_extents(pred.boxes, self.config.max_canvas)
    canvas = static_crops.canvas_size(extents, spx.shape, tuple(self.config.canvas_sizes))
    self.canvases[canvas] += 1
    # One batch per first frame (the features differ between them), on the frame's canvas.
    batches = [self._fast_batch(first, carry, emb, pred, attention, extents) for first in firsts]
    if len(batches) == 1:
      logodds = _decode_all(canvas, self.variables, *batches[0])
    else:
      probs = [
        _decode_probs(canvas, self.variables, *batch)[: len(first.boxes)]
        for first, batch in zip(firsts, batches)
      ]
      logodds = _soft_aggregate(jnp.concatenate(probs))
    logodds = np.asarray(logodds[..., : num_objects + 1])
    self.timings['decode'] += time.perf_counter() - start
    return logodds, attention

  def _fast_batch(self, first, carry, emb, pred, attention, extents):
    """`_decode_probs_traced` inputs (first, prev, cur, extents, valid) of `first`'s objects,
    padded to their power-of-two object capacity."""
    objects = first.objects
    num_objects = len(first.boxes)
    capacity = _object_capacity(num_objects)
    pad = lambda x, value: jnp.concatenate(
      [jnp.asarray(x), jnp.full((capacity - num_objects,) + x.shape[1:], value, x.dtype)]
    )
    # Padding objects get a 1-pixel box, which fits any canvas; their output is masked out.
    boxes = lambda b: pad(np.asarray(b, np.int32), np.array([0, 1, 0, 1], np.int32))
    planes = lambda x: pad(jnp.moveaxis(jnp.asarray(x), -1, 0), 0.0)
    channels = slice(objects.start + 1, objects.stop + 1)
    return (
      object_crops.CropSource(first.l1, first.l4, boxes(first.boxes), plane=planes(first.planes)),
      object_crops.CropSource(
        carry.l1,
        carry.l4,
        boxes(carry.boxes[objects]),
        plane=planes(carry.logodds[..., channels]),
        attention=pad(carry.attention[objects], 0.0),
      ),
      object_crops.CropSource(
        emb.l1, emb.l4, boxes(pred.boxes[objects]), attention=pad(attention[objects], 0.0)
      ),
      pad(extents[objects], np.array([1, 1], np.int32)),
      jnp.arange(capacity) < num_objects,
    )

  def remember(
    self,
    mem: Any,
    emb: Embedding,
    spx: np.ndarray,
    mask: np.ndarray,
    logodds: np.ndarray,
    preseg: np.ndarray,
  ) -> Tuple[Any, np.ndarray]:
    """Confident superpixels of frame t (judged against `mask`) join the memory under their
    `preseg` pools; returns (memory, [N] bool flags)."""
    start = time.perf_counter()
    confident = self.memory.confident_superpixels(spx, mask, logodds)
    mem = self.memory.memorise_confident(mem, emb.superfeatures, spx, preseg, confident)
    self.timings['memory'] += time.perf_counter() - start
    return mem, confident

  def step(
    self,
    firsts: Sequence[FirstFrame],
    carry: Carry,
    image,
    spx: np.ndarray,
    last: bool,
    memory_features: Optional[np.ndarray] = None,
  ) -> Tuple[FrameOutput, Carry]:
    """One frame t >= 1 from the state after frame t - 1; no memory update when `last`.

    `memory_features` [N, 32], when given, replace the network's superfeatures in the memory.
    """
    emb = self.embed(image, spx)
    if memory_features is not None:
      emb.superfeatures = np.asarray(memory_features, np.float32)
    mem, pred = self.predict(carry, emb, spx)
    logodds, attention = self.decode(firsts, carry, emb, spx, pred)
    mask = (np.argmax(logodds, axis=-1) + 1).astype(np.int32)
    confident = None
    if not last:
      mem, confident = self.remember(mem, emb, spx, mask, logodds, pred.preseg)
    return (
      FrameOutput(pred, logodds, mask, confident),
      Carry(mem, emb.l1, emb.l4, logodds, mask, pred.boxes, pred.attmaps, attention),
    )

  def join(
    self,
    firsts: Sequence[FirstFrame],
    carry: Carry,
    image,
    spx: np.ndarray,
    given: np.ndarray,
    last: bool,
  ) -> Tuple[FrameOutput, Carry, Optional[FirstFrame]]:
    """A frame t >= 1 where some objects' masks are given (an extension: the reference tracks
    only the objects of frame 0).

    The tracked objects are predicted as in `step`; then the given masks replace the prediction
    on their pixels (`with_given_masks`). Unless `last`: the tracked classes' confident
    superpixels join the memory as in `step` (none under a given mask), the superpixels are
    merged with the resulting mask as at frame 0, and on them the new objects' superfeatures
    join the memory as new classes, their first-frame state is taken, and the next frame's
    state comes from the memory's prediction with that mask as annotation, as after frame 0.

    Args:
      firsts: every tracked object's first-frame state.
      carry: the state after frame t - 1.
      image, spx: frame t (normalised) and its superpixels.
      given: [H, W] int class map of the given objects, 0 elsewhere; classes beyond the carry's
        are new objects, numbered on from the carry's.
      last: frame t is the video's last (no memory work).

    Returns:
      (output, with the prediction made before the join; next state; the new objects'
      `FirstFrame`, None when there is none).
    """
    emb = self.embed(image, spx)
    mem, pred = self.predict(carry, emb, spx)
    logodds, _ = self.decode(firsts, carry, emb, spx, pred)
    tracked = logodds.shape[-1]
    logodds = with_given_masks(logodds, given)
    mask = (np.argmax(logodds, axis=-1) + 1).astype(np.int32)
    if last:
      return FrameOutput(pred, logodds, mask, None), carry, None
    preseg = np.where(given > 0, 0, pred.preseg)
    mem, confident = self.remember(mem, emb, spx, mask, logodds, preseg)
    merged = pools.merge_with_annotation(spx, mask)
    joined = self.embed(image, merged)
    start = time.perf_counter()
    new_classes = np.arange(tracked + 1, logodds.shape[-1] + 1)
    first = None
    if new_classes.size:
      frame_pools = pools.mode_pools(merged, mask)
      for cls in new_classes:
        if not np.any(frame_pools == cls):
          # The merge's id arithmetic can fuse an object's pieces into another class' superpixel:
          # the superpixel holding most of the object then stands for it.
          ids, counts = np.unique(merged[mask == cls], return_counts=True)
          frame_pools[ids[np.argmax(counts)] - 1] = cls
      joining = frame_pools > tracked
      mem = self.memory.add_classes(mem, joined.superfeatures[joining], frame_pools[joining], mask)
    mem, after = self.memory.predict(mem, joined.superfeatures, merged, mask, annotation=mask)
    self.timings['memory'] += time.perf_counter() - start
    if new_classes.size:
      planes = (mask[..., None] == new_classes).astype(np.float32)
      first = FirstFrame(
        joined.l1, joined.l4, jnp.asarray(planes), after.boxes[tracked - 1 :], tracked - 1
      )
    next_carry = Carry(
      mem,
      joined.l1,
      joined.l4,
      logodds,
      mask,
      after.boxes,
      after.attmaps,
      self._attention(merged, after),
    )
    return FrameOutput(pred, logodds, mask, confident), next_carry, first

  # Decoding ---------------------------------------------------------------------------------

  def exact_inputs(
    self,
    firsts: Sequence[FirstFrame],
    carry: Carry,
    emb: Embedding,
    pred: MemoryPrediction,
    k: int,
  ):
    """Exact-mode decoder inputs of object k (class k + 2): (ObjectInputs, pads)."""
    first, i = first_of(firsts, k)
    return object_crops.object_inputs(
      object_crops.CropSource(first.l1, first.l4, first.boxes[i], plane=first.planes[..., i]),
      object_crops.CropSource(
        carry.l1,
        carry.l4,
        carry.boxes[k],
        plane=jnp.asarray(carry.logodds[..., k + 1]),
        attention=carry.attmaps[k],
      ),
      object_crops.CropSource(emb.l1, emb.l4, pred.boxes[k], attention=pred.attmaps[k]),
    )

  def _decode_exact(self, firsts, carry, emb, pred) -> np.ndarray:
    start = time.perf_counter()
    frame_hw = carry.mask.shape
    frame_logits = []
    for k, box in enumerate(pred.boxes):
      inputs, pads = self.exact_inputs(firsts, carry, emb, pred, k)
      logits = _decode_object(self.variables, inputs)
      frame_logits.append(object_crops.paste_back(logits, pads, box, frame_hw))
    frame_logits = jax.block_until_ready(jnp.stack(frame_logits))
    middle = time.perf_counter()
    logodds = np.asarray(_aggregate(frame_logits))
    end = time.perf_counter()
    self.timings['decode'] += middle - start
    self.timings['aggregation'] += end - middle
    return logodds

  def _attention(self, spx, pred) -> Optional[jax.Array]:
    if self.config.mode != 'fast':
      return None
    return jnp.asarray(full_frame_attention(spx, pred))

  # Whole videos -----------------------------------------------------------------------------

  def propagate(
    self,
    images,
    spx,
    annotation,
    progress: bool = False,
    memory_features: Optional[List[np.ndarray]] = None,
  ) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
    """Runs the loop on normalised frames.

    Args:
      images: [T, H, W, 3] float32 normalised frames.
      spx: [T, H, W] int superpixels, dense 1..N_t per frame.
      annotation: [H, W] int frame-0 class map with classes 1..C all present, C >= 2.
      progress: show a progress bar.
      memory_features: optional per-frame [N_t, 32] superfeatures (frame 0: on the merged
        superpixels) that the memory uses instead of the network's. The kNN is discontinuous at
        exact similarity ties, so reproducing recorded memory decisions needs the recorded
        superfeatures bit for bit.

    Returns:
      (masks [T, H, W] int32 class maps, presegs [T, H, W] int32, log-odds [T, H, W, C] float32
      or None unless `config.keep_logodds`); frame 0 holds the annotation.
    """
    masks, presegs, logodds = zip(
      *self._frames(
        zip(images, spx), annotation, memory_features, total=len(images), progress=progress
      )
    )
    return (
      np.stack(masks),
      np.stack(presegs).astype(np.int32),
      None if logodds[0] is None else np.stack(logodds).astype(np.float32),
    )

  def _frames(
    self, pairs, annotation, memory_features=None, total=None, progress=False, later=None
  ):
    """The loop over an iterable of (normalised frame, superpixels) pairs: yields (class map,
    pre-segmentation, log-odds or None) per frame, holding only the memory and the previous
    frame's state. One frame is read ahead, so that the last one skips the memory update.
    `later` maps frame indices t >= 1 to [H, W] class maps of objects given there (`join`)."""
    later = later or {}
    given = iter(memory_features) if memory_features else itertools.repeat(None)
    pairs = iter(pairs)
    image, frame_spx = next(pairs)
    merged = pools.merge_with_annotation(frame_spx, annotation)
    emb = self.embed(image, merged)
    features = next(given)
    if features is not None:
      emb.superfeatures = np.asarray(features, np.float32)
    first, carry = self.first_frame(emb, merged, annotation)
    firsts = [first]
    keep = self.config.keep_logodds
    yield carry.mask, carry.mask, carry.logodds if keep else None
    bar = tqdm.tqdm(total=None if total is None else total - 1, disable=not progress, leave=False)
    upcoming = next(pairs, None)
    for t in itertools.count(1):
      if upcoming is None:
        break
      image, frame_spx = upcoming
      upcoming = next(pairs, None)
      last = upcoming is None
      if t in later:
        out, carry, first = self.join(firsts, carry, image, frame_spx, later[t], last)
        firsts += [first] if first is not None else []
      else:
        out, carry = self.step(
          firsts, carry, image, frame_spx, last=last, memory_features=next(given)
        )
      bar.update()
      yield out.mask, out.prediction.preseg, out.logodds if keep else None
    bar.close()

  def stream(
    self,
    frames,
    first_mask,
    later_masks: Optional[Mapping[int, np.ndarray]] = None,
    progress: bool = False,
  ) -> Iterator[FrameResult]:
    """Segments a video frame by frame, with `run`'s results, holding nothing but the memory and
    the previous frame's state: a video of any length runs in constant memory.

    Args:
      frames: iterable of (frame [H, W, 3] uint8 RGB, superpixels [H, W] int dense 1..N).
      first_mask: [H, W] int object ids of frame 0 (see `run`).
      later_masks: see `run`.
      progress: show a progress bar.

    Yields:
      `FrameResult` per frame; frame 0's mask is the first mask.
    """
    pairs = iter(frames)
    head = next(pairs, None)
    if head is None:
      raise ValueError('the video has no frame')

    def checked(frame, frame_spx):
      frame, frame_spx, mask = _check_video(
        np.asarray(frame)[None], np.asarray(frame_spx)[None], first_mask
      )
      return frame[0], frame_spx[0], mask

    frame, frame_spx, mask = checked(*head)
    later = _check_later_masks(later_masks, mask.shape)
    rest = (checked(*pair)[:2] for pair in pairs)
    return self._stream(itertools.chain([(frame, frame_spx)], rest), mask, later, progress)

  def _stream(self, video, first_mask, later, progress: bool) -> Iterator[FrameResult]:
    """`stream` over checked (frame, superpixels) pairs, first mask and later masks."""
    ids = _tracked_ids(first_mask, later)
    id_of_class = np.concatenate([[0], ids]).astype(np.uint8)
    # Class of an id = its position in tracking order + 2; searchsorted needs the ids sorted.
    order = np.argsort(ids)
    sorted_ids = ids[order]
    classes = lambda mask: np.where(mask > 0, order[np.searchsorted(sorted_ids, mask)] + 2, 0)
    video = iter(video)
    start = 0
    if not np.any(first_mask):
      # Background until the first frame with a given object, which then acts as frame 0.
      start = next((t for t, mask in later.items() if np.any(mask)), None)
      for t, (frame, frame_spx) in enumerate(video):
        if t == start:
          video = itertools.chain([(frame, frame_spx)], video)
          break
        yield FrameResult(
          np.zeros(frame_spx.shape, np.uint8),
          np.ones(frame_spx.shape, np.int32),
          np.zeros(frame_spx.shape + (1,), np.float32) if self.config.keep_logodds else None,
        )
      else:
        return
      first_mask = later[start]
    annotation = np.where(first_mask > 0, classes(first_mask), 1)
    class_maps = {t - start: classes(mask) for t, mask in later.items() if t > start}
    normalised = (
      (normalise(frame, self.config.mean, self.config.std), frame_spx) for frame, frame_spx in video
    )
    for class_map, preseg, logodds in self._frames(
      normalised, annotation, progress=progress, later=class_maps
    ):
      yield FrameResult(id_of_class[class_map - 1], np.asarray(preseg, np.int32), logodds)

  def run(
    self,
    frames,
    spx,
    first_mask,
    later_masks: Optional[Mapping[int, np.ndarray]] = None,
    progress: bool = False,
  ) -> VideoResult:
    """Segments a video held in memory (`stream` over its frames).

    Object id i of the first mask is tracked as class (rank of i among the ids present) + 1, i.e.
    class i + 1 when the ids are 1..K; ids absent from the first frame are not tracked and never
    appear in the output, unless `later_masks` give them. A video without any object gives an
    all-background result.

    Args:
      frames: [T, H, W, 3] uint8 RGB.
      spx: [T, H, W] int superpixels, dense labels 1..N_t in every frame.
      first_mask: [H, W] int DAVIS object ids 0..K (0 = background; 255 = void is refused).
      later_masks: optional {t: [H, W] int object ids} for frames t >= 1 where objects are given
        (YouTube-VOS: objects that appear late). Each id there takes its given mask at frame t;
        an id not tracked yet joins the video as a new object (`join`) and is tracked from then
        on, as class (number of ids before it) + 2. Ids keep their values in the output. If the
        first mask has no object, the first frame with a given object acts as frame 0 and the
        frames before it are background.
      progress: show a progress bar.

    Returns:
      `VideoResult`; with `config.keep_logodds` and objects joining, every frame's log-odds have
      the final class count, channels of objects not there yet at the clamped minimum.
    """
    frames, spx, first_mask = _check_video(frames, spx, first_mask)
    later = _check_later_masks(later_masks, first_mask.shape, len(frames))
    # Checked above as a whole: not again frame by frame.
    results = list(self._stream(zip(frames, spx), first_mask, later, progress))
    logodds = None
    if results[0].logodds is not None:
      channels = max(r.logodds.shape[-1] for r in results)
      logodds = np.stack(
        [
          np.pad(
            r.logodds,
            ((0, 0), (0, 0), (0, channels - r.logodds.shape[-1])),
            constant_values=LOW_LOGODDS,
          )
          for r in results
        ]
      ).astype(np.float32)
    return VideoResult(
      np.stack([r.mask for r in results]), np.stack([r.preseg for r in results]), logodds
    )


def _tracked_ids(first_mask: np.ndarray, later: Mapping[int, np.ndarray]) -> np.ndarray:
  """Object ids in the order they are tracked: the first mask's sorted, then each later frame's
  new ones sorted."""
  ids = [int(i) for i in np.unique(first_mask) if i > 0]
  for mask in later.values():
    ids += [int(i) for i in np.unique(mask) if i > 0 and i not in ids]
  return np.array(ids, np.int64)


def _check_later_masks(later_masks, size, num_frames: Optional[int] = None) -> dict:
  """{t: [H, W] int64 ids} sorted by frame, checked against the frame size and count."""
  later = {}
  for t, mask in sorted((later_masks or {}).items()):
    mask = np.asarray(mask)
    if not isinstance(t, (int, np.integer)) or t < 1 or (num_frames and t >= num_frames):
      raise ValueError(f'later masks need frame indices 1..T - 1, got {t!r}')
    if mask.shape != tuple(size) or not np.issubdtype(mask.dtype, np.integer):
      raise ValueError(
        f'later mask of frame {t} must be [H, W] {tuple(size)} integer ids, got '
        f'{mask.shape} {mask.dtype}'
      )
    if mask.size and (mask.min() < 0 or mask.max() >= VOID):
      raise ValueError(
        f'later mask of frame {t}: ids must lie in 0..{VOID - 1}, found {mask.min()}..{mask.max()}'
      )
    later[int(t)] = mask.astype(np.int64)
  return later


def _check_video(frames, spx, first_mask):
  """Validates `Propagator.run` inputs; returns them as numpy arrays."""
  frames, spx, first_mask = np.asarray(frames), np.asarray(spx), np.asarray(first_mask)
  if frames.ndim != 4 or frames.shape[-1] != 3:
    raise ValueError(f'frames must be [T, H, W, 3] RGB, got shape {frames.shape}')
  if spx.shape != frames.shape[:3]:
    raise ValueError(f'superpixels {spx.shape} do not match the frames {frames.shape[:3]}')
  if first_mask.shape != frames.shape[1:3]:
    raise ValueError(
      f'first mask {first_mask.shape} does not match the frame size {frames.shape[1:3]}'
    )
  if frames.shape[0] < 1:
    raise ValueError('the video has no frame')
  if not np.issubdtype(spx.dtype, np.integer) or not np.issubdtype(first_mask.dtype, np.integer):
    raise ValueError(
      f'superpixels and first mask must be integer, got {spx.dtype} and {first_mask.dtype}'
    )
  if first_mask.min() < 0 or first_mask.max() >= VOID:
    raise ValueError(
      f'first-mask ids must lie in 0..{VOID - 1} (map void {VOID} to an id or '
      f'to 0 first), found {first_mask.min()}..{first_mask.max()}'
    )
  flat = spx.reshape(spx.shape[0], -1)
  top = flat.max(axis=1)
  counts = np.array([np.unique(f).size for f in flat])
  bad = np.flatnonzero((flat.min(axis=1) < 1) | (counts != top))
  if bad.size:
    raise ValueError(
      f'superpixels of frame {bad[0]} are not dense 1..N ({counts[bad[0]]} '
      f'distinct labels, max {top[bad[0]]}); relabel them first'
    )
  return frames, spx.astype(np.int32), first_mask.astype(np.int64)
