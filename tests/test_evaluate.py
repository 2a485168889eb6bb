"""Tests of `evaluate.py` and `shls_jax.evaluation.evaluator`: scoring an existing results folder,
the results folder rule, and short end-to-end runs of the real propagation engine with random
weights on tiny DAVIS-layout copies."""

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from configs import davis2016_val, davis2017_val
from shls_jax import checkpoints, superpixels
from shls_jax.data import davis
from shls_jax.evaluation import evaluator
from shls_jax.io import masks as mask_io
from shls_jax.io import results as results_io

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_SEQUENCES = 'blackswan,bmx-trees,car-shadow,dog,libby'
_TINY_FRAMES = 4
_SYNTHETIC_SIZE = (96, 128)
# Small working size and few superpixels keep the run to seconds.
_FAST_TINY = [
  '--config.eval.size=(120, 216)',
  '--config.eval.superpixels.slic_segments=100',
  '--config.inference.mode=fast',
  '--config.inference.superpixel_capacity=256',
  '--config.eval.workers=1',
]


def _evaluate_cli(*args) -> subprocess.CompletedProcess:
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  return subprocess.run(
    [sys.executable, str(ROOT / 'evaluate.py'), *map(str, args)],
    cwd=ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=600,
  )


def _read_csv(path: Path) -> list[list[str]]:
  with open(path, newline='') as f:
    return list(csv.reader(f))


def _csv_values(path: Path) -> dict[str, list[float]]:
  rows = _read_csv(path)
  return {
    row[0] if not _is_number(row[0]) else 'global': [float(v) for v in row[1:]] for row in rows[1:]
  }


def _is_number(text: str) -> bool:
  try:
    float(text)
  except ValueError:
    return False
  return True


def _sample_config(davis_root):
  config = davis2016_val.get_config()
  config.eval.davis_root = str(davis_root)
  config.eval.workers = 1
  return config


# ------------------------------------------------------------------------------------ score only


@pytest.fixture
def osvos_copy(davis_sample, tmp_path) -> Path:
  results = tmp_path / 'osvos'
  shutil.copytree(davis_sample / 'results' / 'osvos-binarized', results)
  return results


def test_score_only_reproduces_official_csvs(davis_sample, osvos_copy):
  official = {
    name: _csv_values(osvos_copy / name)
    for name in ('global_results-val.csv', 'per-sequence_results-val.csv')
  }
  args = [
    '--config',
    'configs/davis2016_val.py',
    '--davis_root',
    davis_sample,
    '--results_dir',
    osvos_copy,
    '--sequences',
    SAMPLE_SEQUENCES,
    '--score_only',
  ]
  refused = _evaluate_cli(*args)
  assert refused.returncode != 0
  assert 'already exist' in refused.stderr and '--overwrite' in refused.stderr
  done = _evaluate_cli(*args, '--overwrite')
  assert done.returncode == 0, done.stderr
  assert 'Global results for val' in done.stdout
  for name, expected in official.items():
    ours = _csv_values(osvos_copy / name)
    assert ours.keys() == expected.keys()
    for key in expected:
      np.testing.assert_allclose(ours[key], expected[key], atol=1e-3, err_msg=f'{name} {key}')


def test_score_only_without_config_takes_the_protocol_from_flags(davis_sample, osvos_copy):
  official = _csv_values(osvos_copy / 'global_results-val.csv')
  common = ['--score_only', '--davis_root', davis_sample, '--results_dir', osvos_copy]
  done = _evaluate_cli(*common, '--single_object', '--overwrite')
  assert done.returncode == 0, done.stderr
  np.testing.assert_allclose(
    _csv_values(osvos_copy / 'global_results-val.csv')['global'], official['global'], atol=1e-3
  )
  # The DAVIS-2017 protocol by default: the sample's masks hold one object, so the same numbers.
  done = _evaluate_cli(*common, '--overwrite', '--workers', '1')
  assert done.returncode == 0, done.stderr
  np.testing.assert_allclose(
    _csv_values(osvos_copy / 'global_results-val.csv')['global'], official['global'], atol=1e-3
  )
  missing = _evaluate_cli('--davis_root', davis_sample, '--results_dir', osvos_copy)
  assert missing.returncode != 0 and '--config is required unless --score_only' in missing.stderr


def test_score_only_matches_published_global_numbers(davis_sample, osvos_copy):
  numbers = evaluator.evaluate(
    _sample_config(davis_sample),
    osvos_copy,
    score_only=True,
    sequences=SAMPLE_SEQUENCES.split(','),
    overwrite=True,
  )
  assert numbers['J&F-Mean'] == pytest.approx(0.7846, abs=1e-3)
  assert numbers['J-Mean'] == pytest.approx(0.7492, abs=1e-3)
  assert numbers['F-Mean'] == pytest.approx(0.8200, abs=1e-3)


def test_missing_sequence_folder_is_a_clear_error(davis_sample, osvos_copy):
  shutil.rmtree(osvos_copy / 'dog')
  result = _evaluate_cli(
    '--config',
    'configs/davis2016_val.py',
    '--davis_root',
    davis_sample,
    '--results_dir',
    osvos_copy,
    '--sequences',
    SAMPLE_SEQUENCES,
    '--score_only',
    '--overwrite',
  )
  assert result.returncode != 0
  assert 'error:' in result.stderr and 'dog' in result.stderr
  assert 'Traceback' not in result.stderr


def test_unknown_sequence_is_a_clear_error(davis_sample, tmp_path):
  with pytest.raises(FileNotFoundError, match='nosuchsequence'):
    evaluator.Evaluator(
      _sample_config(davis_sample), tmp_path / 'out', sequences=['blackswan', 'nosuchsequence']
    )


def test_davis2016_config_names_the_twenty_val_sequences():
  config = davis2016_val.get_config()
  assert len(config.eval.sequences.split(',')) == 20
  assert config.eval.single_object
  assert not davis2017_val.get_config().eval.single_object


# ------------------------------------------------------------------------------ results folder


def test_foreign_folder_is_not_overwritten(davis_sample, tmp_path):
  results = tmp_path / 'mine'
  results.mkdir()
  (results / 'notes.txt').write_text('keep me')
  config = _sample_config(davis_sample)
  with pytest.raises(FileExistsError, match='--overwrite'):
    evaluator.Evaluator(config, results, sequences=['blackswan']).predict(None)
  (results / 'notes.txt').unlink()
  (results / evaluator.SETTINGS_FILE).write_text('{"weights": "other.pth", "config": {}}')
  with pytest.raises(FileExistsError, match='another run'):
    evaluator.Evaluator(config, results, sequences=['blackswan']).predict(None)


def test_precomputed_superpixels_missing_map_is_a_clear_error(davis_sample, tmp_path):
  config = _sample_config(davis_sample)
  config.eval.superpixels.method = 'precomputed'
  config.eval.superpixels.root = str(tmp_path / 'spx')
  sequence = davis.load_sequence(davis_sample, 'blackswan')
  frame = np.zeros((8, 8, 3), np.uint8)
  with pytest.raises(FileNotFoundError, match='shls_jax.tools.superpixels'):
    superpixels.frame_superpixels(
      frame, sequence.name, sequence.frame_names[0], config.eval.superpixels
    )


def test_overlay_tints_objects_only():
  frame = np.full((4, 5, 3), 100, np.uint8)
  mask = np.zeros((4, 5), np.uint8)
  mask[1, 2] = 1
  out = mask_io.overlay(frame, mask)
  np.testing.assert_array_equal(out[0, 0], frame[0, 0])
  np.testing.assert_array_equal(out[1, 2], [114, 50, 50])  # halfway to DAVIS red (128, 0, 0)


# ---------------------------------------------------------------------------------- end to end


def _write_synthetic_sequence(root: Path, name: str) -> None:
  """Two objects on a textured background; object 2 leaves the scene after frame 1."""
  rng = np.random.default_rng(0)
  h, w = _SYNTHETIC_SIZE
  background = cv2.resize(
    rng.integers(0, 255, (6, 8, 3), dtype=np.uint8), (w, h), interpolation=cv2.INTER_CUBIC
  )
  for t in range(_TINY_FRAMES):
    image = background.copy()
    mask = np.zeros((h, w), np.uint8)
    mask[30:60, 10 + 8 * t : 40 + 8 * t] = 1
    if t < 2:
      mask[10:30, 90:120] = 2
    image[mask == 1] = (220, 40, 40)
    image[mask == 2] = (40, 40, 220)
    (root / 'JPEGImages' / '480p' / name).mkdir(parents=True, exist_ok=True)
    cv2.imwrite(
      str(root / 'JPEGImages' / '480p' / name / f'{t:05d}.jpg'),
      cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
    )
    mask_io.write_mask(root / 'Annotations' / '480p' / name / f'{t:05d}.png', mask)


@pytest.fixture(scope='module')
def tiny_run(davis_sample, tmp_path_factory):
  """evaluate.py (random weights, fast mode, 120x216) on the first frames of blackswan and on a
  synthetic two-object sequence; returns (davis root, results dir, completed process)."""
  root = tmp_path_factory.mktemp('tiny_davis')
  for kind, ext in (('JPEGImages', 'jpg'), ('Annotations', 'png')):
    folder = root / kind / '480p' / 'blackswan'
    folder.mkdir(parents=True)
    for t in range(_TINY_FRAMES):
      shutil.copy(davis_sample / kind / '480p' / 'blackswan' / f'{t:05d}.{ext}', folder)
  _write_synthetic_sequence(root, 'squares')
  (root / 'ImageSets' / '2017').mkdir(parents=True)
  (root / 'ImageSets' / '2017' / 'val.txt').write_text('blackswan\nsquares\n')
  results = tmp_path_factory.mktemp('tiny_results') / 'run'
  process = _evaluate_cli(
    '--config',
    'configs/davis2017_val.py',
    '--davis_root',
    root,
    '--results_dir',
    results,
    '--overlays',
    *_FAST_TINY,
  )
  assert process.returncode == 0, process.stderr[-3000:]
  return root, results, process


def test_end_to_end_writes_annotation_size_indexed_pngs(tiny_run):
  root, results, process = tiny_run
  assert 'RANDOM WEIGHTS' in process.stderr
  for name, size, num_objects in (('blackswan', (480, 854), 1), ('squares', _SYNTHETIC_SIZE, 2)):
    sequence = davis.load_sequence(root, name)
    for t, frame in enumerate(sequence.frame_names):
      with Image.open(results / name / f'{frame}.png') as image:
        assert image.mode == 'P'
        assert image.getpalette()[:9] == [0, 0, 0, 128, 0, 0, 0, 128, 0]
        mask = np.asarray(image)
      assert mask.shape == size
      assert mask.max() <= num_objects
      if t == 0:
        np.testing.assert_array_equal(mask, davis.load_masks(sequence, [0])[0])
      assert (results / 'overlays' / name / f'{frame}.jpg').is_file()


def test_end_to_end_writes_both_csvs(tiny_run):
  _, results, process = tiny_run
  rows = _read_csv(results / 'per-sequence_results-val.csv')
  assert [r[0] for r in rows[1:]] == ['blackswan_1', 'squares_1', 'squares_2']
  ((header, values),) = [_read_csv(results / 'global_results-val.csv')]
  assert header[0] == 'J&F-Mean' and 0 <= float(values[0]) <= 1
  assert 'Global results for val' in process.stdout


def test_rerun_without_overwrite_skips_complete_sequences(tiny_run, tmp_path):
  root, results, _ = tiny_run
  config = davis2017_val.get_config()
  config.eval.davis_root = str(root)
  config.eval.workers = 1
  with config.unlocked():
    config.update_from_flattened_dict(
      {
        'eval.size': (120, 216),
        'eval.superpixels.slic_segments': 100,
        'inference.mode': 'fast',
        'inference.superpixel_capacity': 256,
      }
    )
  rerun = evaluator.Evaluator(config, results, weights='random', progress=False)
  stamp = (results / 'blackswan' / '00001.png').stat().st_mtime_ns
  # No sequence is recomputed, so no network (variables None) is ever built.
  assert rerun.predict(None) == []
  assert (results / 'blackswan' / '00001.png').stat().st_mtime_ns == stamp
  interrupted = tmp_path / 'interrupted'
  shutil.copytree(results, interrupted)
  (interrupted / 'squares' / '00002.png').unlink()
  for sequence, complete in zip(rerun.davis_sequences[:2], (True, False)):
    assert results_io.is_complete(interrupted / sequence.name, sequence.frame_names) == complete


# ------------------------------------------------------------------------------------ weights


def test_orbax_checkpoint_folder_is_restored(tmp_path):
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top

  state = {
    'params': {'w': np.arange(3, dtype=np.float32)},
    'batch_stats': {'m': np.ones(2, np.float32)},
    'step': 7,
  }
  manager = ocp.CheckpointManager(tmp_path / 'checkpoints')
  manager.save(7, args=ocp.args.StandardSave(state))
  manager.wait_until_finished()
  variables = checkpoints.load_variables(str(tmp_path / 'checkpoints'))
  np.testing.assert_array_equal(variables['params']['w'], state['params']['w'])
  np.testing.assert_array_equal(variables['batch_stats']['m'], state['batch_stats']['m'])
  assert evaluator.describe_weights(str(tmp_path / 'checkpoints')).endswith('checkpoints@7')
  with pytest.raises(FileNotFoundError, match='no orbax checkpoint'):
    checkpoints.load_variables(str(tmp_path))


def test_reference_checkpoint_is_loaded(parity_dir):
  variables = checkpoints.load_variables(str(parity_dir / 'checkpoint.pth'))
  assert set(variables) == {'params', 'batch_stats'}
  assert evaluator.describe_weights(str(parity_dir / 'checkpoint.pth')).endswith('checkpoint.pth')


def _evaluate_squares(root, split: str, results, *flags):
  """evaluate.py on the DAVIS-2017 `split` of `root`, which lists the sequence 'squares'."""
  (root / 'ImageSets' / '2017').mkdir(parents=True)
  (root / 'ImageSets' / '2017' / f'{split}.txt').write_text('squares\n')
  config = 'configs/davis2017_testdev.py' if split == 'test-dev' else 'configs/davis2017_val.py'
  return _evaluate_cli(
    '--config', config, '--davis_root', root, '--results_dir', results, *flags, *_FAST_TINY
  )


def test_test_dev_split_is_segmented_and_zipped_without_scoring(tmp_path):
  import zipfile

  root = tmp_path / 'test-dev'
  _write_synthetic_sequence(root, 'squares')
  # Test splits annotate the first frame only.
  for mask in sorted((root / 'Annotations' / '480p' / 'squares').glob('*.png'))[1:]:
    mask.unlink()
  results = tmp_path / 'results'
  done = _evaluate_squares(root, 'test-dev', results, '--zip')
  assert done.returncode == 0, done.stderr[-3000:]
  assert not list(results.glob('*.csv'))
  with zipfile.ZipFile(results / 'submission-test-dev.zip') as archive:
    names = archive.namelist()
    assert names == [f'squares/{t:05d}.png' for t in range(_TINY_FRAMES)]
    with archive.open(names[0]) as f:
      image = Image.open(f)
      assert image.mode == 'P' and image.size == _SYNTHETIC_SIZE[::-1]


def test_baseline_flag_scores_copying_the_first_mask_beside_the_model(tmp_path):
  root = tmp_path / 'davis'
  _write_synthetic_sequence(root, 'squares')
  results = tmp_path / 'results'
  done = _evaluate_squares(root, 'val', results, '--baseline')
  assert done.returncode == 0, done.stderr[-3000:]
  copied = _csv_values(results / 'baseline' / 'global_results-val.csv')['global']
  assert (results / 'global_results-val.csv').is_file()
  # Object 1 moves 8 px a frame and object 2 leaves: copying the first mask is far from perfect.
  assert 0 < copied[0] < 0.9
  masks = [
    mask_io.read_indexed_png(p) for p in sorted((results / 'baseline' / 'squares').glob('*'))
  ]
  assert all(np.array_equal(m, masks[0]) for m in masks)


def test_report_is_one_self_contained_page_beside_the_baseline_and_a_compared_folder(tmp_path):
  root = tmp_path / 'davis'
  _write_synthetic_sequence(root, 'squares')
  annotations = root / 'Annotations' / '480p'
  perfect, copied = tmp_path / 'perfect', tmp_path / 'copied'
  shutil.copytree(annotations, perfect)
  first = mask_io.read_indexed_png(annotations / 'squares' / '00000.png')
  for t in range(_TINY_FRAMES):
    mask_io.write_mask(copied / 'squares' / f'{t:05d}.png', first)
  common = ['--score_only', '--davis_root', root, '--sequences', 'squares', '--report']
  done = _evaluate_cli(*common, '--results_dir', perfect, '--compare', copied)
  assert done.returncode == 0, done.stderr[-3000:]
  page = (perfect / 'report.html').read_text()
  # Self-contained: no file or address is referred to, the thumbnails are data URIs.
  assert 'src="http' not in page and 'href=' not in page
  assert page.count('data:image/jpeg;base64,') == 3 * 2  # worst frames x (annotation, 2 folders)
  assert page.count('<svg') == 1 + 2  # bars, and the J curves of two objects
  for label in ('perfect', 'copy first mask', 'copied', 'J&amp;F-Mean', 'object 2: J per frame'):
    assert label in page
  # The results' row reads 1.000 everywhere but the decays.
  row = page.split('<td>perfect</td>')[1].split('</tr>')[0]
  assert row.startswith('<td>1.000</td><td>1.000</td><td>1.000</td><td>0.000</td>')
  # The report is the folder's: a second one needs --overwrite, like the CSVs.
  again = _evaluate_cli(*common, '--results_dir', perfect)
  assert again.returncode != 0 and 'report.html already exists' in again.stderr
  missing = _evaluate_cli(*common, '--overwrite', '--results_dir', perfect, '--compare', root / 'x')
  assert missing.returncode != 0 and 'does not exist' in missing.stderr


def test_first_mask_auto_runs_unsupervised_beside_per_frame_saliency(tmp_path):
  from shls_jax.data import saliency

  root = tmp_path / 'davis'
  _write_synthetic_sequence(root, 'squares')
  results = tmp_path / 'results'
  common = ['--davis_root', root, '--sequences', 'squares', *_FAST_TINY, '--first_mask', 'auto']
  refused = _evaluate_cli('--config', 'configs/davis2017_val.py', '--results_dir', results, *common)
  assert refused.returncode != 0 and 'single_object' in refused.stderr
  assert 'Traceback' not in refused.stderr
  without = _evaluate_cli(
    '--config', 'configs/davis2016_val.py', '--results_dir', results, '--report', *common
  )
  assert without.returncode != 0 and 'needs --baseline' in without.stderr
  done = _evaluate_cli(
    '--config',
    'configs/davis2016_val.py',
    '--results_dir',
    results,
    '--baseline',
    '--report',
    *common,
  )
  assert done.returncode == 0, done.stderr[-3000:]
  # The report's baseline is the copy of the salient mask the run started from.
  copied = float(_read_csv(results / 'baseline' / 'global_results-val.csv')[1][0])
  row = (results / 'report.html').read_text().split('<td>copy first mask</td>')[1]
  assert row.startswith(f'<td>{copied:.3f}</td>')
  frame = cv2.cvtColor(
    cv2.imread(str(root / 'JPEGImages/480p/squares/00000.jpg')), cv2.COLOR_BGR2RGB
  )
  np.testing.assert_array_equal(
    mask_io.read_indexed_png(results / 'squares' / '00000.png'), saliency.salient_object(frame)
  )
  for folder in (results, results / 'baseline', results / 'saliency'):
    assert len(_csv_values(folder / 'global_results-val.csv')['global']) == 6
