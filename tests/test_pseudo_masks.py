"""Tests of the unsupervised pseudo-masks (`shls_jax.data.saliency`, `pseudo_masks`, the
`python -m shls_jax.tools.pseudo_masks` tool) and of training on a folder of raw images."""

import json
import subprocess
import sys
from pathlib import Path

import cv2
import jax
import numpy as np
import pytest

from shls_jax.data import pseudo_masks, saliency, self_training, synthetic

REPO = Path(__file__).resolve().parents[1]
SIZE = (60, 80)
# Small maps: few superpixels, a few GrabCut rounds.
FAST = {'n_segments': 40, 'iterations': 2}
# A tiny network, two rounds of one epoch.
FAST_SELF = {**FAST, 'size': 16, 'width': 4, 'rounds': 2, 'epochs': 1, 'batch_size': 2}


@pytest.fixture(scope='module')
def images(tmp_path_factory) -> Path:
  """Four generated photos (an object on texture), no masks."""
  folder = tmp_path_factory.mktemp('photos')
  rng = np.random.default_rng(0)
  for i in range(4):
    image, _ = synthetic.make_still(rng, *SIZE, soft=False)
    cv2.imwrite(str(folder / f'photo{i}.jpg'), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
  return folder


def _tool(*args) -> subprocess.CompletedProcess:
  return subprocess.run(
    [sys.executable, '-m', 'shls_jax.tools.pseudo_masks', *map(str, args)],
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=300,
  )


def _params():
  return [f'--param={k}={v}' for k, v in FAST.items()]


def test_methods_give_maps_in_unit_range_and_find_the_object():
  rng = np.random.default_rng(1)
  image, truth = synthetic.make_still(rng, 96, 128, soft=False)
  for method in saliency.METHODS:
    if method in saliency.FOLDER_METHODS:
      with pytest.raises(ValueError, match='learns over a folder'):
        saliency.saliency_map(image, method)
      continue
    soft = saliency.saliency_map(image, method)
    assert soft.shape == truth.shape and soft.dtype == np.float32
    assert 0 <= soft.min() and soft.max() <= 1
    binary = saliency.binary_mask(soft, method)
    overlap = np.count_nonzero(binary & (truth > 0)) / np.count_nonzero(binary | (truth > 0))
    assert overlap > 0.3, (method, overlap)
  # The cut's soft map is exactly zero outside it (random binarisation keeps faint pixels).
  soft = saliency.saliency_map(image, 'saliency_cut')
  assert np.all((soft == 0) | (soft >= 0.5))


def test_minimum_barrier_distance_is_zero_on_the_border_and_high_on_an_object():
  image = np.full((60, 80, 3), 40, np.uint8)
  image[20:40, 30:50] = 220
  barrier = saliency.saliency_map(image, 'barrier', {'n_segments': 40})
  assert barrier[:5].max() < 0.05 and barrier[25:35, 35:45].min() > 0.9


def test_fusion_weights_choose_the_cues():
  rng = np.random.default_rng(2)
  image, _ = synthetic.make_still(rng, 60, 80, soft=False)
  only_barrier = {
    'w_connectivity': 0.0,
    'w_global_contrast': 0.0,
    'w_boundary_connectivity': 0.0,
    'fusion': 'mean',
  }
  few = {'n_segments': 40}
  fused = saliency.saliency_map(image, 'fused', {**few, **only_barrier, 'centre_power': 0.0})
  barrier = saliency.saliency_map(image, 'barrier', few)
  np.testing.assert_allclose(fused, barrier, atol=1e-6)
  cut = saliency.saliency_map(image, 'fused_cut', FAST)
  assert np.all((cut == 0) | (cut >= 0.5))


def test_boolean_parameters_read_the_command_line():
  assert saliency.parameters('self_trained', {'refine': 'false'})['refine'] is False
  with pytest.raises(ValueError, match='expected a boolean'):
    saliency.parameters('self_trained', {'refine': 'maybe'})


def test_unknown_method_or_parameter_is_refused():
  with pytest.raises(ValueError, match='unknown pseudo-mask method'):
    saliency.parameters('deep')
  with pytest.raises(ValueError, match=r"unknown parameters \['radius'\]"):
    saliency.parameters('saliency_cut', {'radius': 3})


def test_tool_writes_soft_and_binary_masks_of_each_image(images, tmp_path):
  done = _tool('--images', images, '--out', tmp_path / 'soft', *_params())
  assert done.returncode == 0, done.stderr
  assert '4 masks computed, 0 kept' in done.stdout
  binary = _tool('--images', images, '--out', tmp_path / 'binary', '--binary', *_params())
  assert binary.returncode == 0, binary.stderr
  soft_values, binary_values = set(), set()
  for image in sorted(images.glob('*.jpg')):
    for folder, values in (('soft', soft_values), ('binary', binary_values)):
      mask = cv2.imread(str(tmp_path / folder / f'{image.stem}.png'), cv2.IMREAD_UNCHANGED)
      assert mask.shape == SIZE and mask.dtype == np.uint8
      values |= set(np.unique(mask).tolist())
  assert binary_values <= {0, 255} and len(soft_values) > 2
  settings = json.loads((tmp_path / 'soft' / pseudo_masks.SETTINGS_FILE).read_text())
  assert settings['method'] == 'saliency_cut' and settings['params']['n_segments'] == 40


def test_tool_resumes_and_refuses_to_overwrite(images, tmp_path):
  out = tmp_path / 'masks'
  assert _tool('--images', images, '--out', out, *_params()).returncode == 0
  (out / 'photo2.png').unlink()
  again = _tool('--images', images, '--out', out, *_params())
  assert again.returncode == 0 and '1 masks computed, 3 kept' in again.stdout
  other = _tool('--images', images, '--out', out, '--param=n_segments=30')
  assert other.returncode != 0 and 'other settings' in other.stderr
  assert other.stderr.count('\n') == 1
  forced = _tool('--images', images, '--out', out, '--param=n_segments=30', '--overwrite')
  assert forced.returncode == 0 and '4 masks computed' in forced.stdout
  foreign = tmp_path / 'foreign'
  foreign.mkdir()
  (foreign / 'notes.txt').write_text('mine')
  refused = _tool('--images', images, '--out', foreign, *_params())
  assert refused.returncode != 0 and 'not empty' in refused.stderr
  assert (foreign / 'notes.txt').read_text() == 'mine'


def test_unreadable_image_is_a_one_line_error(images, tmp_path):
  broken = tmp_path / 'broken'
  broken.mkdir()
  (broken / 'bad.jpg').write_bytes(b'not a jpeg')
  done = _tool('--images', broken, '--out', tmp_path / 'out')
  assert done.returncode != 0
  # The last line, under the progress bar.
  assert done.stderr.strip().splitlines()[-1] == (
    f'error: cannot read image {broken / "bad.jpg"} (missing, corrupt or not an image)'
  )
  empty = _tool('--images', tmp_path / 'nowhere', '--out', tmp_path / 'out2')
  assert empty.returncode != 0 and 'is not a directory' in empty.stderr


def test_training_cache_is_reused_and_recomputed_when_a_parameter_changes(images, tmp_path):
  first = pseudo_masks.cached_samples([images], tmp_path, params=FAST, progress=False)
  assert len(first) == 4 and all(s.mask_path.is_file() for s in first)
  folder = first[0].mask_path.parent
  written = {p: p.stat().st_mtime_ns for p in folder.glob('*.png')}
  again = pseudo_masks.cached_samples([images], tmp_path, params=FAST, progress=False)
  assert [s.mask_path for s in again] == [s.mask_path for s in first]
  assert {p: p.stat().st_mtime_ns for p in folder.glob('*.png')} == written
  changed = pseudo_masks.cached_samples(
    [images], tmp_path, params={**FAST, 'iterations': 3}, progress=False
  )
  assert changed[0].mask_path.parent != folder
  binary = pseudo_masks.cached_samples([images], tmp_path, params=FAST, binary=True, progress=False)
  assert set(np.unique(cv2.imread(str(binary[0].mask_path), 0))) <= {0, 255}
  assert pseudo_masks.cache_key('saliency_cut', FAST) in str(folder)
  assert len(list(tmp_path.iterdir())) == 3


def test_training_runs_on_a_raw_image_folder(images, tmp_path):
  from test_train import _config

  from shls_jax.training import loop

  config = _config(
    images,
    **{
      'data.layout': 'folder',
      'data.split': '',
      'data.pseudo_mask_workers': 1,
      # 60x80 photos as 40x53 stills under 32x32 frames.
      'data.still_short_side': 40,
      'num_train_steps': 2,
    },
  )
  config.data.pseudo_mask_params.update(FAST)
  state = loop.train_and_evaluate(config, tmp_path / 'workdir')
  assert int(state.step) == 2
  cache = tmp_path / 'workdir' / loop.PSEUDO_MASK_DIR
  assert len(list(cache.glob('*/0-photos*/*.png'))) == 4


def _tiny_folder_arrays():
  rng = np.random.default_rng(3)
  images, targets = [], []
  for _ in range(4):
    image, mask = synthetic.make_still(rng, 16, 16, soft=False)
    images.append(image)
    targets.append((mask > 0).astype(np.float32))
  return np.stack(images), np.stack(targets)


def test_self_training_resumes_where_it_stopped(tmp_path, monkeypatch):
  images, targets = _tiny_folder_arrays()
  p = saliency.parameters('self_trained', {**FAST_SELF, 'epochs': 2})
  whole = self_training.fit(images, targets, tmp_path / 'whole', p, progress=False)
  assert len(whole) == 2
  saves = []
  real_save = self_training._save

  def interrupted(path, tree):
    if len(saves) == 2:
      raise KeyboardInterrupt
    saves.append(path)
    real_save(path, tree)

  monkeypatch.setattr(self_training, '_save', interrupted)
  with pytest.raises(KeyboardInterrupt):
    self_training.fit(images, targets, tmp_path / 'resumed', p, progress=False)
  monkeypatch.setattr(self_training, '_save', real_save)
  resumed = self_training.fit(images, targets, tmp_path / 'resumed', p, progress=False)
  for a, b in zip(jax.tree.leaves(whole[-1]), jax.tree.leaves(resumed[-1])):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_self_training_refuses_a_damaged_or_foreign_state(tmp_path):
  images, targets = _tiny_folder_arrays()
  p = saliency.parameters('self_trained', FAST_SELF)
  self_training.fit(images, targets, tmp_path, p, progress=False)
  with pytest.raises(ValueError, match='of 4 images, not 3: delete it'):
    self_training.fit(images[:3], targets[:3], tmp_path, p, progress=False)
  state = tmp_path / self_training.STATE_FILE
  state.write_bytes(state.read_bytes()[:100])
  with pytest.raises(ValueError, match='cannot read the self-training state'):
    self_training.fit(images, targets, tmp_path, p, progress=False)
  with pytest.raises(ValueError, match='need images'):
    self_training.fit(images[..., :2], targets, tmp_path / 'other', p, progress=False)


def test_tool_self_trains_over_the_folder_and_resumes(images, tmp_path):
  params = [f'--param={k}={v}' for k, v in FAST_SELF.items()]
  out = tmp_path / 'masks'
  done = _tool('--images', images, '--out', out, '--method=self_trained', '--binary', *params)
  assert done.returncode == 0, done.stderr
  assert '4 masks computed, 0 kept' in done.stdout
  for image in sorted(images.glob('*.jpg')):
    mask = cv2.imread(str(out / f'{image.stem}.png'), cv2.IMREAD_UNCHANGED)
    assert mask.shape == SIZE and set(np.unique(mask)) <= {0, 255}
  (runs,) = (out / pseudo_masks.SELF_TRAINING_DIR).iterdir()
  assert (runs / 'round_2.msgpack').is_file() and len(list(runs.glob('targets/0/*.png'))) == 4
  (out / 'photo1.png').unlink()
  again = _tool('--images', images, '--out', out, '--method=self_trained', '--binary', *params)
  assert again.returncode == 0 and '1 masks computed, 3 kept' in again.stdout


def test_self_trained_cache_trains_one_network_over_every_folder(images, tmp_path):
  second = tmp_path / 'more'
  second.mkdir()
  for path in sorted(images.glob('*.jpg'))[:2]:
    (second / path.name).write_bytes(path.read_bytes())
  samples = pseudo_masks.cached_samples(
    [images, second], tmp_path / 'cache', 'self_trained', FAST_SELF, progress=False
  )
  assert len(samples) == 6 and all(s.mask_path.is_file() for s in samples)
  key = pseudo_masks.cache_key('self_trained', FAST_SELF)
  (run,) = (tmp_path / 'cache' / key / pseudo_masks.SELF_TRAINING_DIR).iterdir()
  assert sorted(p.name for p in (run / 'targets').iterdir()) == ['0', '1']
