"""Tests of the DAVIS metrics, result mask files and the scoring of result folders."""

import csv
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage.morphology import disk as skimage_disk

from shls_jax.data import davis
from shls_jax.evaluation import metrics, scoring
from shls_jax.io import masks as mask_io
from shls_jax.io import results as results_io

_OSVOS = 'results/osvos-binarized'


def _read_csv(path: Path) -> list[list[str]]:
  with open(path, newline='') as f:
    return list(csv.reader(f))


# ---------------------------------------------------------------------------------------- metrics


def test_disk_matches_skimage():
  for radius in range(13):
    np.testing.assert_array_equal(metrics.disk(radius), skimage_disk(radius))


def test_boundary_map_of_a_box():
  mask = np.zeros((8, 10), bool)
  mask[2:5, 3:7] = True
  expected = np.zeros_like(mask)
  # Half a pixel towards the origin: the row and column before the box, its last row and column.
  expected[1, 2:7] = expected[1:5, 2] = True
  expected[4, 3:7] = expected[1:5, 6] = True
  np.testing.assert_array_equal(metrics.boundary_map(mask), expected)
  full = np.ones((4, 5), bool)
  assert not metrics.boundary_map(full).any()


def _f_measure_whole_image(gt, pred, radius):
  gt_b, pred_b = metrics.boundary_map(gt), metrics.boundary_map(pred)
  if not gt_b.any() or not pred_b.any():
    return 1.0 if gt_b.any() == pred_b.any() else 0.0
  kernel = metrics.disk(radius)
  precision = np.mean(cv2.dilate(gt_b.astype(np.uint8), kernel)[pred_b])
  recall = np.mean(cv2.dilate(pred_b.astype(np.uint8), kernel)[gt_b])
  return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def test_windowed_f_measure_equals_whole_image_computation():
  rng = np.random.default_rng(0)
  for trial in range(60):
    shape = (int(rng.integers(5, 40)), int(rng.integers(5, 40)))
    gt, pred = (np.zeros(shape, bool) for _ in range(2))
    for mask in (gt, pred):
      for _ in range(int(rng.integers(0, 3))):
        # Boxes often touch the image edges, where the boundary rule changes.
        y0, x0 = rng.integers(-3, shape[0]), rng.integers(-3, shape[1])
        h, w = rng.integers(1, 15, size=2)
        mask[max(y0, 0) : y0 + h, max(x0, 0) : x0 + w] = True
    radius = int(rng.integers(1, 6))
    expected = _f_measure_whole_image(gt, pred, radius)
    assert metrics.f_measure(gt, pred, bound_th=radius) == pytest.approx(expected), trial


def test_metric_conventions():
  empty = np.zeros((480, 854), bool)
  box = empty.copy()
  box[100:200, 300:500] = True
  assert metrics.boundary_radius(box.shape) == 8  # ceil(0.008 * 979.6)
  assert metrics.jaccard(empty, empty) == 1.0 and metrics.f_measure(empty, empty) == 1.0
  assert metrics.jaccard(box, empty) == 0.0 and metrics.f_measure(box, empty) == 0.0
  assert metrics.jaccard(empty, box) == 0.0 and metrics.f_measure(empty, box) == 0.0
  shifted = np.roll(box, 8, axis=1)  # within the tolerance: every boundary pixel matches
  assert metrics.f_measure(box, shifted) == 1.0
  assert metrics.jaccard(box, shifted) == pytest.approx(192 / 208)
  void = np.zeros_like(box)
  void[:, 500:508] = void[:, 300:308] = True  # the pixels the two boxes disagree on
  assert metrics.jaccard(box, shifted, void) == 1.0
  stack = np.stack([box, empty])
  np.testing.assert_allclose(metrics.jaccard(stack, np.stack([box, box])), [1.0, 0.0])
  np.testing.assert_allclose(metrics.f_measure_frames(stack, np.stack([box, empty])), [1, 1])
  with pytest.raises(ValueError, match='shapes differ'):
    metrics.f_measure(box, box[:10])


def test_statistics_decay_bins():
  # 8 frames: bins share their edge frames, [0:3] and [5:8].
  values = np.array([1.0, 1.0, 0.4, 0.6, 0.6, 0.2, 0.2, 0.2])
  mean, recall, decay = scoring.statistics(values)
  assert mean == pytest.approx(0.525)
  assert recall == pytest.approx(4 / 8)
  assert decay == pytest.approx(0.8 - 0.2)


# ------------------------------------------------------------------------------------- results io


def test_results_io_roundtrip(tmp_path):
  palette = mask_io.palette()
  np.testing.assert_array_equal(
    palette[:5], [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0], [0, 0, 128]]
  )
  masks = np.zeros((2, 6, 8), np.int64)
  masks[0, 1:3, 2:5] = 1
  masks[1, 4:, :3] = 7
  paths = results_io.write_sequence_masks(tmp_path, 'seq', masks, ['00001', '00002'])
  assert [p.relative_to(tmp_path).as_posix() for p in paths] == ['seq/00001.png', 'seq/00002.png']
  with Image.open(paths[1]) as image:
    assert image.mode == 'P' and image.getpalette()[21:24] == palette[7].tolist()
  np.testing.assert_array_equal(
    results_io.read_sequence_masks(tmp_path, 'seq', ['00001', '00002']), masks
  )
  Image.fromarray((masks[0] * 255).astype(np.uint8)).save(tmp_path / 'binarised.png')
  np.testing.assert_array_equal(
    mask_io.read_mask(tmp_path / 'binarised.png', binary_255=None), masks[0]
  )
  Image.fromarray(masks[1].astype(np.uint8)).save(tmp_path / 'plain.png')
  np.testing.assert_array_equal(
    mask_io.read_mask(tmp_path / 'plain.png', binary_255=None), masks[1]
  )
  with pytest.raises(ValueError, match='object ids must lie in 0..255'):
    mask_io.write_mask(tmp_path / 'bad.png', np.full((2, 2), 300))
  with pytest.raises(FileNotFoundError, match='does not exist'):
    results_io.read_sequence_masks(tmp_path, 'other', ['00001'])


# ---------------------------------------------------------------------------- sample (official)


@pytest.fixture(scope='module')
def sample_tables(davis_sample):
  sequences = davis.list_sequences(davis_sample, 'val')
  return scoring.score_results(
    davis_sample, davis_sample / _OSVOS, sequences, single_object=True, workers=2
  )


def test_sample_matches_official_csvs(davis_sample, sample_tables, tmp_path):
  global_table, sequence_table = sample_tables
  official_global = _read_csv(davis_sample / _OSVOS / 'global_results-val.csv')
  official_sequences = _read_csv(davis_sample / _OSVOS / 'per-sequence_results-val.csv')
  assert official_global[0] == list(scoring.GLOBAL_COLUMNS)
  for column, value in zip(official_global[0], official_global[1]):
    assert global_table[column] == pytest.approx(float(value), abs=1e-3), column
  assert [row['Sequence'] for row in sequence_table] == [r[0] for r in official_sequences[1:]]
  for row, official in zip(sequence_table, official_sequences[1:]):
    assert row['J-Mean'] == pytest.approx(float(official[1]), abs=1e-3)
    assert row['F-Mean'] == pytest.approx(float(official[2]), abs=1e-3)
  # Full precision of the official printout: J&F-Mean 0.784596, J-Mean 0.749154, F-Mean 0.820037.
  assert global_table['J&F-Mean'] == pytest.approx(0.784596, abs=1e-6)
  assert global_table['J-Mean'] == pytest.approx(0.749154, abs=1e-6)
  assert global_table['F-Mean'] == pytest.approx(0.820037, abs=1e-6)
  written = scoring.write_csvs(tmp_path, global_table, sequence_table, 'val')
  for path in written:
    assert path.read_text() == (davis_sample / _OSVOS / path.name).read_text()
  text = scoring.format_tables(global_table, sequence_table, 'val')
  assert 'Global results for val' in text and 'car-shadow_1 0.928402 0.917407' in text


def test_sample_ground_truth_and_empty(davis_sample, tmp_path):
  sequence = davis.load_sequence(davis_sample, 'car-shadow')
  shutil.copytree(
    davis_sample / 'Annotations' / '480p' / 'car-shadow', tmp_path / 'gt' / 'car-shadow'
  )
  empty = np.zeros((len(sequence.frames), 480, 854), np.uint8)
  results_io.write_sequence_masks(tmp_path / 'empty', 'car-shadow', empty, sequence.frame_names)
  perfect, _ = scoring.score_results(davis_sample, tmp_path / 'gt', ['car-shadow'])
  assert perfect == {
    'J&F-Mean': 1.0,
    'J-Mean': 1.0,
    'J-Recall': 1.0,
    'J-Decay': 0.0,
    'F-Mean': 1.0,
    'F-Recall': 1.0,
    'F-Decay': 0.0,
  }
  # The object is visible in every scored frame: an empty prediction scores J = F = 0 there.
  nothing, rows = scoring.score_results(davis_sample, tmp_path / 'empty', ['car-shadow'])
  assert set(nothing.values()) == {0.0}
  assert rows == [{'Sequence': 'car-shadow_1', 'J-Mean': 0.0, 'F-Mean': 0.0}]


def test_sample_errors(davis_sample, tmp_path):
  with pytest.raises(FileNotFoundError, match='no folder for sequence.*dog'):
    scoring.score_results(davis_sample, tmp_path, ['dog'], workers=2)
  sequence = davis.load_sequence(davis_sample, 'car-shadow')
  masks = np.zeros((len(sequence.frames), 480, 854), np.uint8)
  results_io.write_sequence_masks(tmp_path, 'car-shadow', masks, sequence.frame_names)
  mask_io.write_mask(tmp_path / 'car-shadow' / '00007.png', np.zeros((240, 427), np.uint8))
  with pytest.raises(ValueError, match=r'00007.png is \(240, 427\).*annotation is \(480, 854\)'):
    scoring.score_results(davis_sample, tmp_path, ['car-shadow'])
  (tmp_path / 'car-shadow' / '00007.png').unlink()
  with pytest.raises(FileNotFoundError, match='00007.png does not exist'):
    scoring.score_results(davis_sample, tmp_path, ['car-shadow'])


# ------------------------------------------------------------------------- synthetic multi-object


def _box(rows, cols, shape=(40, 60)) -> np.ndarray:
  mask = np.zeros(shape, bool)
  mask[rows[0] : rows[1], cols[0] : cols[1]] = True
  return mask


@pytest.fixture
def synthetic(tmp_path):
  """6 frames of 40 x 60 (tolerance 1 pixel), 2 objects; object 2 leaves after frame 2."""
  object1, object2 = _box((10, 20), (10, 30)), _box((25, 35), (35, 55))
  void = _box((10, 20), (30, 31))  # the column right of object 1
  gt = np.zeros((6, 40, 60), np.uint8)
  gt[:, object1] = 1
  gt[:3][:, object2] = 2
  gt[1][void] = 255
  pred = gt.copy()
  pred[1][void] = 1  # object 1 over the void column: a false positive (J 20/21, F 1)
  pred[2][object2] = 0  # object 2 missed (J 0, F 0)
  pred[4][object1] = 0  # object 1 shifted by a pixel (J 19/21, F 1) ...
  pred[4][np.roll(object1, 1, axis=1)] = 1
  pred[4][object2] = 2  # ... and object 2 predicted after it left (J 0, F 0)
  names = [f'{i:05d}' for i in range(6)]
  for i, name in enumerate(names):
    frame_path = tmp_path / 'davis' / 'JPEGImages' / '480p' / 'synth' / f'{name}.jpg'
    frame_path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(frame_path), np.zeros((40, 60, 3), np.uint8))
    mask_io.write_mask(tmp_path / 'davis' / 'Annotations' / '480p' / 'synth' / f'{name}.png', gt[i])
  results_io.write_sequence_masks(tmp_path / 'results', 'synth', pred, names)
  return tmp_path / 'davis', tmp_path / 'results'


def test_synthetic_multi_object(synthetic):
  root, results = synthetic
  scores = scoring.score_sequence(root, results, 'synth')
  assert scores.object_ids == (1, 2) and scores.frame_names == ('00001', '00002', '00003', '00004')
  np.testing.assert_allclose(scores.j, [[20 / 21, 1, 1, 19 / 21], [1, 0, 1, 0]])
  np.testing.assert_allclose(scores.f, [[1, 1, 1, 1], [1, 0, 1, 0]])
  global_table, rows = scoring.score_results(root, results, ['synth'], workers=2)
  # 4 frames: decay bins [0:2] and [2:4].
  j1 = ((20 + 21 + 21 + 19) / 21 / 4, 1.0, (41 / 21 - 40 / 21) / 2)
  j2 = (0.5, 0.5, 0.0)
  expected_j = np.mean([j1, j2], axis=0)
  expected_f = np.mean([(1.0, 1.0, 0.0), (0.5, 0.5, 0.0)], axis=0)
  np.testing.assert_allclose(
    [global_table[c] for c in ('J-Mean', 'J-Recall', 'J-Decay')], expected_j
  )
  np.testing.assert_allclose(
    [global_table[c] for c in ('F-Mean', 'F-Recall', 'F-Decay')], expected_f
  )
  assert global_table['J&F-Mean'] == pytest.approx((expected_j[0] + expected_f[0]) / 2)
  assert [r['Sequence'] for r in rows] == ['synth_1', 'synth_2']
  assert rows[0]['J-Mean'] == pytest.approx(j1[0]) and rows[1]['F-Mean'] == 0.5
  merged, _ = scoring.score_results(root, results, ['synth'], single_object=True)
  assert merged['J-Mean'] < 1.0 and merged['F-Recall'] > 0.0


def test_synthetic_unknown_object_id(synthetic):
  root, results = synthetic
  for folder in (root / 'JPEGImages' / '480p', root / 'Annotations' / '480p', results):
    shutil.copytree(folder / 'synth', folder / 'copy')
  mask_io.write_mask(results / 'copy' / '00003.png', np.full((40, 60), 3, np.uint8))
  # Raised in a worker thread, re-raised here with its message.
  with pytest.raises(ValueError, match='00003.png holds object id 3 but only 2 object'):
    scoring.score_results(root, results, ['synth', 'copy'], workers=2)
