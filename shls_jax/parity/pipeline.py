"""Parity of the propagation loop: per-frame stages from recorded state, and the free-running video.

    shls-parity --vectors DIR --stages pipeline

Each stage group is a plain function `group(ref) -> {key: array}` on a `parity.Reference`, with
the key names and layouts (NCHW) of `vectors.npz`; the output lines are those of
`shls_jax.parity.reference`.

`frame_stages` runs every frame N >= 1 from the reference's own state after frame N - 1
(teacher forcing): the memory is rebuilt from the recorded frame-0 superfeatures and pools and the
recorded confident updates; the previous logits, mask, ROIs and attention maps are the recorded
ones of frame N - 1. The network features come from the checkpoint. The memory stages query with
the recorded superfeatures of frame N: the kNN is discontinuous at exact ties (every superfeature
with a single non-zero channel normalises to the same unit vector, and faiss orders equal
similarities its own way), so a 1-ulp difference in a superfeature can swap tied neighbours;
the superfeatures themselves are checked by `network.frame_superfeature_stages`.

`video_stages` runs `Propagator` (exact mode) free from frame 0: everything is its own except
the superfeatures handed to the memory, which are the recorded ones for the same reason. (On the
network's own superfeatures the loop meets such a tie at frame 0 of the reference directory `v1`
and its masks diverge from there.)
"""

from typing import Dict, List

import jax.numpy as jnp
import numpy as np

from shls_jax.inference import defaults as inference_defaults
from shls_jax.inference import engine, exact_decoder, state
from shls_jax.memory import faiss_memory, frame_rules
from shls_jax.model.shls import SHLS
from shls_jax.parity import reference as parity
from shls_jax.superpixels import pools


def _propagator(ref: parity.Reference) -> engine.Propagator:
  config = inference_defaults.get_config()
  config.mode = 'exact'
  return engine.Propagator(ref.variables, config)


def _images(ref: parity.Reference) -> np.ndarray:
  """Recorded normalised frames as [T, H, W, 3]."""
  return np.moveaxis(ref.vectors['image'], 1, -1)


def _attmaps(vectors, prefix: str, num_objects: int) -> List[np.ndarray]:
  return [vectors[f'{prefix}.attmap{k}'].transpose(1, 2, 0) for k in range(num_objects)]


def _prediction_stages(prefix: str, pred: frame_rules.MemoryPrediction) -> Dict[str, np.ndarray]:
  out = {
    f'{prefix}.knn_pred': pred.knn_pred,
    f'{prefix}.knn_dist': pred.knn_scores,
    f'{prefix}.cent_dist': pred.cent_scores,
    f'{prefix}.preseg': pred.preseg,
    f'{prefix}.bbox': pred.boxes,
  }
  out.update({f'{prefix}.attmap{k}': a.transpose(2, 0, 1) for k, a in enumerate(pred.attmaps)})
  return out


def _decoder_input_stages(ref, firsts, carry, emb, pred, n: int) -> Dict[str, np.ndarray]:
  """Recorded feature-modulator/decoder inputs of frame n, recomputed."""
  out = {}
  for k in range(len(pred.boxes)):
    if f'frame{n}.mem_select{k}.in0' not in ref.vectors:
      continue
    x, _ = exact_decoder.object_inputs(firsts, carry, emb, pred, k)
    modulated = SHLS().apply(ref.variables, x.attention, x.l1, x.l4, method=SHLS.modulate)
    l4 = jnp.concatenate([x.first_l4[None], modulated], axis=-1)
    for i, value in enumerate((x.attention, x.l1, x.l4)):
      out[f'frame{n}.mem_select{k}.in{i}'] = parity.to_nchw(value)
    for i, value in enumerate((x.decoder_l1[None], l4, x.decoder_attention[None])):
      out[f'frame{n}.segmenter{k}.in{i}'] = parity.to_nchw(value)
  return out


def frame_stages(ref: parity.Reference) -> Dict[str, np.ndarray]:
  """frame0.bbox/attmapK, and per frame N >= 1: memory prediction, decoder inputs, pred and
  confident flags, each from the recorded state after frame N - 1."""
  v, prop = ref.vectors, _propagator(ref)
  images, label0 = _images(ref), v['label'][0]
  merged = pools.merge_with_annotation(v['spx'][0], label0)
  emb = prop.embed(images[0], merged)
  emb.superfeatures = v['embed.superfeatures']
  first, carry = prop.first_frame(emb, merged, label0)
  num_objects = len(first.boxes)
  out = {'frame0.bbox': first.boxes}
  out.update({f'frame0.attmap{k}': a.transpose(2, 0, 1) for k, a in enumerate(carry.attmaps)})
  mem = carry.memory
  for n in range(1, v['spx'].shape[0]):
    spx = v['spx'][n]
    if n > 1:
      logodds = v[f'frame{n - 1}.pred'][0].transpose(1, 2, 0)
      carry = state.Carry(
        mem,
        carry.l1,
        carry.l4,
        logodds,
        (np.argmax(logodds, axis=-1) + 1).astype(np.int32),
        v[f'frame{n - 1}.bbox'],
        _attmaps(v, f'frame{n - 1}', num_objects),
      )
    carry.memory = mem
    emb = prop.embed(images[n], spx)
    emb.superfeatures = v[f'frame{n}.superfeatures']
    mem, pred = prop.predict(carry, emb, spx)
    out.update(_prediction_stages(f'frame{n}', pred))
    out.update(_decoder_input_stages(ref, [first], carry, emb, pred, n))
    logodds, _ = prop.decoder.decode([first], carry, emb, spx, pred)
    out[f'frame{n}.pred'] = parity.to_nchw(logodds[None])
    if f'frame{n}.confident' in v:
      mask = np.argmax(logodds, axis=-1) + 1
      out[f'frame{n}.confident'] = frame_rules.confident_superpixels(spx, mask, logodds).astype(
        v[f'frame{n}.confident'].dtype
      )
      mem = faiss_memory.memorise_confident(
        mem, emb.superfeatures, spx, v[f'frame{n}.preseg'], v[f'frame{n}.confident'].astype(bool)
      )
    carry.l1, carry.l4 = emb.l1, emb.l4
  return out


def pool_stages(ref: parity.Reference) -> Dict[str, np.ndarray]:
  """Frame 0's superpixels merged with its labels and their pools; frame 1's pools unmerged."""
  v = ref.vectors
  merged = pools.merge_with_annotation(v['spx'][0], v['label'][0])
  return {
    'pools.spx_merged0': merged,
    'pools.pools0': pools.mode_pools(merged, v['label'][0]),
    'pools.pools1': pools.mode_pools(v['spx'][1], v['label'][1]),
  }


def recorded_superfeatures(vectors) -> List[np.ndarray]:
  """Per-frame recorded superfeatures, frame 0's on the merged superpixels."""
  return [vectors['embed.superfeatures']] + [
    vectors[f'frame{n}.superfeatures'] for n in range(1, vectors['spx'].shape[0])
  ]


def video_stages(ref: parity.Reference) -> Dict[str, np.ndarray]:
  """video.masks / video.presegs (class labels) of the whole loop running free, its memory fed
  with the recorded superfeatures (see the module docstring)."""
  v = ref.vectors
  frames = _propagator(ref).frames(
    zip(_images(ref), v['spx']), v['label'][0], memory_features=recorded_superfeatures(v)
  )
  masks, presegs, _ = zip(*frames)
  return {
    'video.masks': np.stack(masks).astype(v['video.masks'].dtype),
    'video.presegs': np.stack(presegs).astype(v['video.presegs'].dtype),
  }


STAGE_GROUPS = (pool_stages, frame_stages, video_stages)
