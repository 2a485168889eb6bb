"""The propagation engine: segments a video from its first-frame mask, frame by frame.

Frame 0: the superpixels are merged with the annotation, embedded, and the memory is fitted on
their pools; a memory prediction with the annotation gives the frame-0 ROIs and attention maps;
the previous logits are the annotation's one-hot. Frame t >= 1: embedding, memory prediction with
the previous mask, one decoder pass per object on its first/previous/current inputs, paste-back,
soft aggregation, mask = argmax + 1; then (except after the last frame) the confident
superpixels, judged against that mask, join the memory under their pre-segmentation pools.
Each step is its own method (`embed`, `first_frame`, `predict`, `decoder.decode`, `remember`) so that a
caller can run one frame from recorded state. Objects given at a later frame (YouTube-VOS) join
there (`join`, an extension of the reference); each object decodes with the first-frame state of
the frame where it was given (`FirstFrame`).

Modes (`config.mode`): 'exact' reproduces the reference (`exact_decoder`); 'fast' decodes at
static shapes (`fast_decoder`, its deviation from exact mode measured there). Both modes pad the
superpixel count to a static capacity (a multiple of `config.superpixel_bucket`, at least
`config.superpixel_capacity` in fast mode); superfeatures of labels 1..N do not depend on it.
The memory (`config.memory`) is any `memory.interface.InferenceMemory`.

Conventions: frames are [H, W, 3]; class maps are [H, W] int with 1 = background, 2.. = objects,
0 = removed from a pre-segmentation; logits/log-odds channel j = class j + 1; boxes are
[rmin, rmax, cmin, cmax] with exclusive max; superpixel maps are dense 1..N per frame.

This file is longer than the others (about 500 lines) because the steps above are methods of one
object sharing its memory, decoder and timings; the decoders, the state, the objects' ids and
the input checks are in their own modules.
"""

import collections
import dataclasses
import functools
import itertools
import time
from typing import Any, Iterator, Mapping, NamedTuple, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np
import tqdm

from shls_jax.inference import checks, frame_step, objects
from shls_jax.inference.exact_decoder import ExactDecoder
from shls_jax.inference.fast_decoder import FastDecoder
from shls_jax.inference.state import TRACE_COUNTS, Carry, Embedding, FirstFrame, FrameOutput
from shls_jax.memory import frame_rules, interface
from shls_jax.memory.frame_rules import MemoryPrediction
from shls_jax.model import shls
from shls_jax.superpixels import pools, slic_jax

MODES = ('exact', 'fast')


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
  labels (None where frames run as one device step, see `stream`), logodds [H, W, C] float32
  (only with `config.keep_logodds`, else None)."""

  mask: np.ndarray
  preseg: Optional[np.ndarray]
  logodds: Optional[np.ndarray]


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


@functools.partial(jax.jit, static_argnums=3)
def _embed(variables, image, spx, num_segments):
  TRACE_COUNTS['embed'] += 1
  return shls.embed(variables, image, spx, num_segments=num_segments)[0]


class Propagator:
  """Semi-supervised propagation of a first-frame mask through a video.

  Attributes:
    timings: seconds spent per stage ('embed', 'memory', 'decode', 'aggregation') since
      construction (device work is waited for at each stage's end).
    canvases: fast mode: frames decoded per canvas (ch, cw) since construction; the decoder
      compiles at most once per canvas and object capacity.
    device_step_state: where frames run as one device step, the last video's (`FirstState`,
      frame-0 `FrameCarry`, `Settings`), for benchmarks that time the step alone.
  """

  def __init__(
    self,
    variables,
    config,
    memory: Optional[interface.InferenceMemory] = None,
    slic_segments: int = 0,
  ):
    """variables: SHLS {'params', 'batch_stats'}; config: see `defaults.get_config`; memory: the
    superfeature memory, by default `interface.build(config)`; slic_segments: the JAX SLIC's
    n_segments for frames streamed without superpixels (0: every frame brings its own)."""
    if config.mode not in MODES:
      raise ValueError(f'inference mode must be one of {MODES}, got {config.mode!r}')
    self.variables = variables
    self.config = config
    self.slic_segments = slic_segments
    self.timings = collections.defaultdict(float)
    self.decoder = (
      FastDecoder(variables, config, self.timings)
      if config.mode == 'fast'
      else ExactDecoder(variables, self.timings)
    )
    self.memory = memory if memory is not None else interface.build(config)

  @property
  def canvases(self) -> collections.Counter:
    """Fast mode: frames decoded per canvas (ch, cw); empty in exact mode."""
    return self.decoder.canvases

  # Steps ------------------------------------------------------------------------------------

  def capacity(self, num_spx: int) -> int:
    """Static superpixel capacity used for a frame with num_spx superpixels."""
    capacity = _round_up(num_spx, self.config.superpixel_bucket)
    if self.config.mode == 'fast':
      capacity = max(capacity, self.config.superpixel_capacity)
    return capacity

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
    mem = self.memory.fit(emb.superfeatures, pools.mode_pools(spx, annotation), num_cls)
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
      self.decoder.attention(spx, pred),
    )
    return first, carry

  def predict(self, carry: Carry, emb: Embedding, spx: np.ndarray) -> Tuple[Any, MemoryPrediction]:
    """Memory prediction of frame t from the previous mask."""
    start = time.perf_counter()
    out = self.memory.predict(carry.memory, emb.superfeatures, spx, carry.mask)
    self.timings['memory'] += time.perf_counter() - start
    return out

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
    confident = frame_rules.confident_superpixels(spx, mask, logodds)
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
    logodds, attention = self.decoder.decode(firsts, carry, emb, spx, pred)
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
    logodds, _ = self.decoder.decode(firsts, carry, emb, spx, pred)
    tracked = logodds.shape[-1]
    logodds = objects.with_given_masks(logodds, given)
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
      self.decoder.attention(merged, after),
    )
    return FrameOutput(pred, logodds, mask, confident), next_carry, first

  # Whole videos -----------------------------------------------------------------------------

  def frames(self, pairs, annotation, memory_features=None, total=None, progress=False, later=None):
    """The loop over class maps, under `stream`.

    Holds only the memory and the previous frame's state. One frame is read ahead, so that the
    last one skips the memory update.

    Args:
      pairs: iterable of (frame [H, W, 3] float32 normalised, superpixels [H, W] int dense 1..N).
      annotation: [H, W] int frame-0 class map with classes 1..C all present, C >= 2.
      memory_features: optional per-frame [N_t, 32] superfeatures (frame 0: on the merged
        superpixels) that the memory uses instead of the network's. The kNN is discontinuous at
        exact similarity ties, so reproducing recorded memory decisions needs the recorded
        superfeatures bit for bit (the parity tool's use).
      total: number of frames, for the progress bar.
      progress: show a progress bar.
      later: {t >= 1: [H, W] class map of the objects given at frame t} (`join`).

    Yields:
      (class map [H, W] int32, pre-segmentation [H, W] int, log-odds [H, W, C] float32 or None
      unless `config.keep_logodds`) per frame; frame 0 yields the annotation twice.
    """
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
      frames: iterable of (frame [H, W, 3] uint8 RGB, superpixels [H, W] int dense 1..N, or
        None for the JAX SLIC of the frame with `slic_segments` segments).
      first_mask: [H, W] int object ids of frame 0 (see `run`).
      later_masks: see `run`.
      progress: show a progress bar.

    Yields:
      `FrameResult` per frame; frame 0's mask is the first mask. Where frames run as one device
      step (`uses_frame_step`), `preseg` is None and `logodds` too unless
      `config.keep_logodds`: each frame's mask is then its only copy to the host.
    """
    pairs = iter(frames)
    head = next(pairs, None)
    if head is None:
      raise ValueError('the video has no frame')

    def checked(frame, frame_spx):
      if frame_spx is None:
        frame, mask = checks.check_frame(frame, first_mask, self.slic_segments)
        return frame, None, mask
      frame, frame_spx, mask = checks.check_video(
        np.asarray(frame)[None], np.asarray(frame_spx)[None], first_mask
      )
      return frame[0], frame_spx[0], mask

    frame, frame_spx, mask = checked(*head)
    later = checks.check_later_masks(later_masks, mask.shape)
    rest = (checked(*pair)[:2] for pair in pairs)
    return self._stream(itertools.chain([(frame, frame_spx)], rest), mask, later, progress)

  def uses_frame_step(self, later: Mapping[int, np.ndarray]) -> bool:
    """Whether frames t >= 1 run as one device step (`frame_step`): fast mode with the device
    memory and `config.frame_step`, for a video whose objects are all given at its first frame
    (objects joining later run on the host rules)."""
    config = self.config
    return config.mode == 'fast' and config.memory == 'device' and config.frame_step and not later

  def slic_capacity(self) -> int:
    """Superpixel slots of the JAX SLIC's maps: room for twice the segments asked for."""
    return self.capacity(2 * self.slic_segments)

  def host_superpixels(self, frame: np.ndarray) -> np.ndarray:
    """[H, W] int32 JAX SLIC superpixels of a uint8 frame, on the host."""
    labels, _ = slic_jax.segment_jit(
      frame, n_segments=self.slic_segments, capacity=self.slic_capacity()
    )
    return np.asarray(labels)

  def _stream(
    self, video, first_mask, later, progress: bool, details: bool = False
  ) -> Iterator[FrameResult]:
    """`stream` over checked (frame, superpixels or None) pairs, first mask and later masks;
    `details`: the frame step's pre-segmentations come to the host too (`run`)."""
    ids = objects.tracked_ids(first_mask, later)
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
    if self.uses_frame_step(class_maps):
      yield from self._device_frames(video, annotation, id_of_class, progress, details)
      return
    video = (
      (frame, self.host_superpixels(frame) if frame_spx is None else frame_spx)
      for frame, frame_spx in video
    )
    normalised = (
      (normalise(frame, self.config.mean, self.config.std), frame_spx) for frame, frame_spx in video
    )
    for class_map, preseg, logodds in self.frames(
      normalised, annotation, progress=progress, later=class_maps
    ):
      yield FrameResult(id_of_class[class_map - 1], np.asarray(preseg, np.int32), logodds)

  def _device_frames(self, video, annotation, id_of_class, progress, details):
    """`_stream`'s loop where frames t >= 1 are `frame_step`s: frame 0 on the host path, then
    per frame one copy of the frame (and of host superpixels) in and one of the mask out. The
    mask's copy is asynchronous: frame t + 1 is queued on the device before frame t's mask is
    waited for."""
    config = self.config
    video = iter(video)
    frame, frame_spx = next(video)
    if frame_spx is None:
      frame_spx = self.host_superpixels(frame)
    merged = pools.merge_with_annotation(frame_spx, annotation)
    first, carry = self.first_frame(
      self.embed(normalise(frame, config.mean, config.std), merged), merged, annotation
    )
    settings = frame_step.Settings(
      num_cls=int(annotation.max()),
      canvas=(0, 0),
      max_canvas=config.max_canvas,
      canvas_sizes=tuple(config.canvas_sizes),
      superpixel_capacity=max(self.slic_capacity(), config.superpixel_capacity),
      slic_segments=self.slic_segments,
      kmeans_iterations=config.device_kmeans_iterations,
      mean=tuple(config.mean),
      std=tuple(config.std),
    )
    variables = jax.device_put(self.variables)
    first_state, state = frame_step.initial_state(first, carry, id_of_class)
    self.device_step_state = (first_state, state, settings)
    # Everything above is frame 0's, done before its result is handed out: from here on a frame
    # copies nothing but itself in and its mask out.
    yield FrameResult(
      id_of_class[annotation - 1],
      np.asarray(annotation, np.int32),
      carry.logodds if config.keep_logodds else None,
    )
    min_boxes = np.asarray(carry.memory.initial_boxes)
    newest = id_of_class[annotation - 1]
    keys = ['mask'] + ['preseg'] * details + ['logodds'] * bool(config.keep_logodds)
    bar = tqdm.tqdm(disable=not progress, leave=False)
    pending = collections.deque()
    for frame, frame_spx in itertools.chain(video, [(None, None)]):
      if frame is not None:
        start = time.perf_counter()
        canvas, state, mask, extra = frame_step.launch(
          variables,
          first_state,
          state,
          frame,
          frame_spx,
          newest,
          id_of_class,
          min_boxes,
          settings,
        )
        self.canvases[canvas] += 1
        outputs = dict(mask=mask, preseg=extra.preseg, logodds=extra.logodds)
        wanted = [outputs[key] for key in keys]
        for array in wanted:
          array.copy_to_host_async()
        pending.append(wanted)
        self.timings['frame_step'] += time.perf_counter() - start
      # One frame in flight: frame t's mask is read once frame t + 1 is queued.
      if pending and (frame is None or len(pending) > 1):
        got = dict(zip(keys, jax.device_get(pending.popleft())))
        newest = got['mask']
        bar.update()
        yield FrameResult(got['mask'], got.get('preseg'), got.get('logodds'))
      if frame is None and not pending:
        break
    bar.close()

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
    frames, spx, first_mask = checks.check_video(frames, spx, first_mask)
    later = checks.check_later_masks(later_masks, first_mask.shape, len(frames))
    # Checked above as a whole: not again frame by frame.
    results = list(self._stream(zip(frames, spx), first_mask, later, progress, details=True))
    logodds = None
    if results[0].logodds is not None:
      channels = max(r.logodds.shape[-1] for r in results)
      logodds = np.stack(
        [
          np.pad(
            r.logodds,
            ((0, 0), (0, 0), (0, channels - r.logodds.shape[-1])),
            constant_values=objects.LOW_LOGODDS,
          )
          for r in results
        ]
      ).astype(np.float32)
    return VideoResult(
      np.stack([r.mask for r in results]), np.stack([r.preseg for r in results]), logodds
    )
