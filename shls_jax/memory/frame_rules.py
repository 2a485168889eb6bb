"""What the memory's scores of a frame become, by the reference's rules (numpy, no faiss): the
cleaned pre-segmentation, the ROIs and attention maps, and the superpixels confident enough to
join the memory. Shared by the host memory and the on-device memory of inference.

Classes are 1..C with 1 = background; score columns are indexed by class - 1. Superpixel maps are
[H, W] int labelled densely 1..N; boxes are [rmin, rmax, cmin, cmax], max exclusive.
"""

import dataclasses

import numpy as np

from shls_jax.memory import rois, rules
from shls_jax.superpixels.pools import mode_pools


@dataclasses.dataclass(frozen=True)
class MemoryPrediction:
  """What the memory says about one frame.

  Attributes:
    knn_pred: [N] int32 kNN class of each superpixel.
    knn_scores: [N, C] float32 per-class kNN scores.
    cent_scores: [N, C] float32 per-class nearest-centroid scores.
    preseg: [H, W] int32 cleaned pre-segmentation (0 = removed).
    boxes: [C - 1, 4] int32 ROI of objects 2..C.
    attmaps: C - 1 arrays [h_k, w_k, 4] float32, attention maps cropped to the boxes.
  """

  knn_pred: np.ndarray
  knn_scores: np.ndarray
  cent_scores: np.ndarray
  preseg: np.ndarray
  boxes: np.ndarray
  attmaps: list[np.ndarray]


def check_features(features: np.ndarray, num_spx: int) -> np.ndarray:
  """Returns `features` as [num_spx, D] float32, or raises ValueError."""
  features = np.asarray(features, dtype=np.float32)
  if features.ndim != 2:
    raise ValueError(f'superfeatures must be [N, D]; got shape {features.shape}')
  if features.shape[0] != num_spx:
    raise ValueError(f'{features.shape[0]} superfeatures for {num_spx} superpixels')
  return features


def check_frame(
  features: np.ndarray, spx: np.ndarray, prev_mask: np.ndarray, annotation: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(features [N, D] float32, spx, prev_mask) of one frame checked against each other."""
  spx = np.asarray(spx)
  if spx.ndim != 2 or spx.min() < 1:
    raise ValueError(f'superpixel map must be [H, W] with labels from 1; got shape {spx.shape}')
  features = check_features(features, int(spx.max()))
  prev_mask = np.asarray(prev_mask)
  for name, other in (('previous mask', prev_mask), ('annotation', annotation)):
    if other is not None and np.shape(other) != spx.shape:
      raise ValueError(f'{name} {np.shape(other)} and superpixel map {spx.shape} differ in shape')
  return features, spx, prev_mask


def with_initial_boxes(memory, prev_mask: np.ndarray):
  """`memory` (a memory dataclass: `initial_boxes`, `num_cls`) with its objects' minimum ROI
  sizes set, on the first predict after fit, to their unwidened boxes in `prev_mask` (frame 0's
  annotation)."""
  if memory.initial_boxes is not None:
    return memory
  return dataclasses.replace(
    memory, initial_boxes=tight_boxes(prev_mask, range(2, memory.num_cls + 1))
  )


def tight_boxes(mask: np.ndarray, classes) -> np.ndarray:
  """[len(classes), 4] int32 unwidened boxes of `classes` in the [H, W] class map `mask`: the
  minimum ROI sizes of objects, from the frame where they are given."""
  return np.stack([rois.roi(mask == cls, widening=0.0) for cls in classes]).astype(np.int32)


def new_class_entries(
  num_cls: int, features: np.ndarray, pools: np.ndarray
) -> tuple[np.ndarray, np.ndarray, list[int]]:
  """Checks what `add_classes` of a memory with `num_cls` classes gets: returns (features
  [M, D] float32, pools [M], the new classes num_cls + 1 .. C', each of which must occur)."""
  pools = np.asarray(pools)
  if pools.ndim != 1 or pools.size == 0:
    raise ValueError(f'pools must be [M] with M >= 1; got shape {pools.shape}')
  features = check_features(features, pools.shape[0])
  classes = list(range(num_cls + 1, int(pools.max()) + 1))
  absent = [cls for cls in classes if not np.any(pools == cls)]
  if pools.min() <= num_cls or absent:
    raise ValueError(
      f'new classes must be {num_cls + 1}.. with a superfeature each; got pools '
      f'{sorted(set(pools.tolist()))}'
    )
  return features, pools, classes


def prediction_from_scores(
  knn_pred: np.ndarray,
  knn_scores: np.ndarray,
  cent_scores: np.ndarray,
  spx: np.ndarray,
  prev_mask: np.ndarray,
  initial_boxes: np.ndarray,
  annotation: np.ndarray | None = None,
) -> MemoryPrediction:
  """The frame's prediction from its superpixels' memory scores.

  Args:
    knn_pred: [N] int kNN class; knn_scores, cent_scores: [N, C] per-class scores.
    spx: [H, W] superpixel map, labels 1..N; prev_mask: [H, W] class map of the previous frame.
    initial_boxes: [C - 1, 4] minimum ROI sizes (`tight_boxes` of frame 0's annotation).
    annotation: optional [H, W] class map of this frame; when given (training, and frame 0 at
      inference) ROIs come from it, widened 0.25 of the extent per side; otherwise from the
      cleaned pre-segmentation, widened 0.15 per side and grown to the minimum size.
  """
  num_cls = knn_scores.shape[1]
  preseg = rois.clean_preseg(knn_pred[spx - 1], prev_mask, num_cls)
  boxes = []
  for cls, min_box in zip(range(2, num_cls + 1), initial_boxes):
    if annotation is not None:
      boxes.append(rois.roi(annotation == cls, widening=rules.ANNOTATION_WIDENING))
      continue
    box = rois.roi(preseg == cls, widening=rules.INFERENCE_WIDENING)
    # A vanished object already gets the full frame; the minimum size applies to found ones.
    if np.any(preseg == cls):
      box = rois.grow_to_min_size(box, min_box, spx.shape)
    boxes.append(box)
  boxes = np.stack(boxes).astype(np.int32)
  return MemoryPrediction(
    knn_pred=knn_pred,
    knn_scores=knn_scores,
    cent_scores=cent_scores,
    preseg=preseg,
    boxes=boxes,
    attmaps=rois.attention_maps(spx, knn_scores, cent_scores, boxes),
  )


def confident_superpixels(
  spx: np.ndarray, seg: np.ndarray, logodds: np.ndarray, ratio: float = rules.CONFIDENCE_RATIO
) -> np.ndarray:
  """Superpixels confident enough to join the memory.

  For each channel j, m_j is the mean of logodds[..., j] over pixels with seg == j + 1 (for the
  background, pixels at the maximum of channel 0 over seg == 1 are left out first). Superpixel n
  is confident when its mean logodds[..., j] >= ratio * m_j for any j with a defined m_j.

  Args:
    spx: [H, W] int superpixel map, labels 1..N.
    seg: [H, W] int reference segmentation (argmax mask at inference, pre-segmentation in
      training), 1 = background.
    logodds: [H, W, C] float aggregated log-odds.
    ratio: fraction of m_j a superpixel's mean must reach.

  Returns:
    [N] bool flags; all False when seg has no background pixel (the memory is then not updated).
  """
  spx = np.asarray(spx)
  logodds = np.asarray(logodds, dtype=np.float64)
  if logodds.ndim != 3 or logodds.shape[:2] != spx.shape or np.shape(seg) != spx.shape:
    raise ValueError(
      f'need spx [H, W], seg [H, W], logodds [H, W, C]; got {spx.shape}, '
      f'{np.shape(seg)}, {logodds.shape}'
    )
  num_spx = int(spx.max())
  background = logodds[..., 0][seg == 1]
  if background.size == 0:
    return np.zeros(num_spx, dtype=bool)
  class_means = np.full(logodds.shape[-1], np.nan)
  unsaturated = background[background < background.max()]
  if unsaturated.size:
    class_means[0] = unsaturated.mean()
  for col in range(1, logodds.shape[-1]):
    values = logodds[..., col][seg == col + 1]
    if values.size:
      class_means[col] = values.mean()
  counts = np.bincount(spx.ravel() - 1, minlength=num_spx)
  spx_means = (
    np.stack(
      [
        np.bincount(spx.ravel() - 1, weights=logodds[..., col].ravel(), minlength=num_spx)
        for col in range(logodds.shape[-1])
      ],
      axis=1,
    )
    / np.maximum(counts, 1)[:, None]
  )
  with np.errstate(invalid='ignore'):
    confident = (spx_means >= ratio * class_means) & (counts > 0)[:, None]
  return confident.any(axis=1)


def confident_entries(
  features: np.ndarray, spx: np.ndarray, preseg: np.ndarray, confident: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
  """What a confident update adds: (superfeatures [M, D], pools [M]) of the confident
  superpixels, each under its pre-segmentation pool (0 = removed, which adds nothing); None when
  nothing is confident.

  Args:
    features: [N, D] float32 superfeatures of the frame.
    spx: [H, W] int superpixel map, labels 1..N.
    preseg: [H, W] int pre-segmentation of the frame.
    confident: [N] bool flags from `confident_superpixels`.
  """
  confident = np.asarray(confident, dtype=bool)
  if not confident.any():
    return None
  pools = mode_pools(spx, preseg)
  features = check_features(features, pools.shape[0])
  if confident.shape != pools.shape:
    raise ValueError(f'{confident.shape[0]} confidence flags for {pools.shape[0]} superpixels')
  return features[confident], pools[confident]
