"""Pseudo-mask folders: one PNG per image (same stem, same size) by a `saliency` method.

`write_masks(images, out, method, params)` writes `<out>/<stem>.png` (a soft map in 0..255, or
0/255 with `binary`) and records what made them in `<out>/pseudo_masks.json`. A folder made with
the same settings is resumed (images whose PNG exists are skipped); a folder made otherwise, or
holding other files, is written into only with `overwrite`, which also recomputes every mask.
PNGs appear whole or not at all (written aside, then renamed).

`self_trained` (a method of a whole folder) first writes the `fused_cut` masks of the images
and self-trains a network on them (`fit_self_training`, `shls_jax.data.self_training`), its
resumable state under `<out>/.self_training/`; the PNGs are then its predictions.

Training on a folder of raw images (`config.data.layout = 'folder'`) caches its masks under
`<workdir>/pseudo_masks/<cache_key>/`, keyed by the method and its full parameters: a changed
method or parameter gets a new folder and recomputes, an unchanged one reuses.
"""

import errno
import hashlib
import json
import multiprocessing
import os
from concurrent import futures
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
from tqdm import tqdm

from shls_jax.data import saliency, self_training, stills
from shls_jax.io import frames as frame_io

SETTINGS_FILE = 'pseudo_masks.json'
# Where a folder method keeps its first targets and resumable training state.
SELF_TRAINING_DIR = '.self_training'


def list_images(folder) -> list[Path]:
  """Sorted images (jpg, jpeg, png, bmp) of `folder`.

  Raises:
    FileNotFoundError: `folder` is not a folder or holds no image.
  """
  folder = Path(folder)
  if not folder.is_dir():
    raise FileNotFoundError(f'image folder {folder} is not a directory')
  images = frame_io.image_files(folder)
  if not images:
    raise FileNotFoundError(f'no images ({", ".join(frame_io.IMAGE_SUFFIXES)}) in {folder}')
  stems = [p.stem for p in images]
  if len(set(stems)) < len(stems):
    raise ValueError(f'{folder} holds images of the same stem in two formats: masks would clash')
  return images


def settings(method: str, params=None, binary: bool = False) -> dict:
  """What decides a folder's masks: the method, its full parameters, soft or binary."""
  return {'method': method, 'params': saliency.parameters(method, params), 'binary': binary}


def cache_key(method: str, params=None, binary: bool = False) -> str:
  """`<method>-<10 hex digits of the settings' hash>`: the cache folder of training."""
  full = json.dumps(settings(method, params, binary), sort_keys=True)
  return f'{method}-{hashlib.sha256(full.encode()).hexdigest()[:10]}'


def _check_folder(out: Path, wanted: dict, overwrite: bool) -> None:
  if overwrite or not out.exists():
    return
  if not out.is_dir():
    raise NotADirectoryError(f'pseudo-mask folder {out} is a file')
  path = out / SETTINGS_FILE
  previous = json.loads(path.read_text()) if path.is_file() else None
  if previous is None and any(out.iterdir()):
    raise FileExistsError(
      f'{out} is not empty and holds no {SETTINGS_FILE}: choose another folder or pass --overwrite'
    )
  if previous is not None and previous != wanted:
    raise FileExistsError(
      f'{out} holds masks of other settings ({previous["method"]}, see {SETTINGS_FILE}): '
      'choose another folder or pass --overwrite'
    )


def _read_rgb(image_path: Path) -> np.ndarray:
  image = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
  if image is None:
    raise ValueError(f'cannot read image {image_path} (missing, corrupt or not an image)')
  return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _save_mask(soft: np.ndarray, image_path: Path, out: Path, method: str, binary: bool) -> Path:
  """Writes `<out>/<stem>.png` whole or not at all; returns its path."""
  values = saliency.binary_mask(soft, method) * 255 if binary else np.round(soft * 255)
  target = out / f'{image_path.stem}.png'
  partial = out / f'.{image_path.stem}.partial.png'
  if not cv2.imwrite(str(partial), values.astype(np.uint8)):
    raise OSError(errno.EIO, 'cannot write (disk full or not writable)', str(partial))
  os.replace(partial, target)
  return target


def _write_one(image_path: Path, out: Path, method: str, params: dict, binary: bool) -> Path:
  """Computes and writes the mask of one image; returns its path."""
  soft = saliency.saliency_map(_read_rgb(image_path), method, params)
  return _save_mask(soft, image_path, out, method, binary)


def _square(image: np.ndarray, size: int) -> np.ndarray:
  return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)


def fit_self_training(
  groups: Sequence[Sequence[Path]], state_dir, params=None, *, workers: int = 1, progress=True
) -> list:
  """Self-trains the saliency network of `self_trained` over the images of `groups` (lists of
  image paths, e.g. one per folder; `shls_jax.data.self_training`).

  The first targets are the `fused_cut` masks of the images, written by `write_masks` under
  `<state_dir>/<run>/targets/<group index>/`; `<run>` is a hash of the parameters and image
  paths, so that other settings or images train afresh and the same resume.

  Returns:
    The network parameters after each round.
  """
  p = saliency.parameters('self_trained', params)
  groups = [[Path(path) for path in group] for group in groups]
  run = json.dumps([p, [[str(path) for path in group] for group in groups]], sort_keys=True)
  state_dir = Path(state_dir) / hashlib.sha256(run.encode()).hexdigest()[:10]
  first = {k: p[k] for k in saliency.DEFAULTS['fused_cut']}
  size = int(p['size'])
  images, targets = [], []
  for i, group in enumerate(groups):
    target_dir = state_dir / 'targets' / str(i)
    write_masks(group, target_dir, 'fused_cut', first, workers=workers, progress=progress)
    for path in group:
      images.append(_square(_read_rgb(path), size))
      targets.append(_square(stills.load_mask(target_dir / f'{path.stem}.png'), size))
  return self_training.fit(np.stack(images), np.stack(targets), state_dir, p, progress=progress)


def _write_predicted(
  paths: Sequence[Path], out: Path, network, p: dict, binary: bool, bar: tqdm
) -> None:
  """Writes the masks of `self_trained` for `paths`: the network's map resized to each image,
  cut by GrabCut where `p['refine']`."""
  size = int(p['size'])
  for start in range(0, len(paths), int(p['batch_size'])):
    chunk = paths[start : start + int(p['batch_size'])]
    images = [_read_rgb(path) for path in chunk]
    maps = self_training.predict_all(network, np.stack([_square(x, size) for x in images]), p)
    for path, image, soft in zip(chunk, images, maps):
      soft = cv2.resize(soft, image.shape[1::-1], interpolation=cv2.INTER_LINEAR)
      if p['refine']:
        soft = saliency.refine(image, soft, p)
      _save_mask(soft, path, out, 'self_trained', binary)
      bar.update()


def write_masks(
  images: Sequence[Path],
  out,
  method: str = saliency.DEFAULT_METHOD,
  params=None,
  *,
  binary: bool = False,
  workers: int = 1,
  overwrite: bool = False,
  progress: bool = True,
  network=None,
) -> int:
  """Writes the pseudo-masks of `images` to `out` (see the module docstring).

  Args:
    images: image paths (distinct stems).
    out: output folder (created).
    method, params: the `saliency` method and parameter overrides.
    binary: 0/255 masks (`saliency.binary_mask`) instead of soft maps.
    workers: processes computing masks in parallel (1 = in this process).
    overwrite: replace whatever `out` holds and recompute every mask.
    progress: show a progress bar.
    network: for `self_trained`, the parameters of a network already self-trained (by
      `fit_self_training`); without it, one is trained over `images`, its state kept in
      `<out>/.self_training/`.

  Returns:
    How many masks were computed (0 when the folder was complete).

  Raises:
    FileExistsError, NotADirectoryError: `out` is not this run's to write (without overwrite).
    ValueError: an image cannot be read, or unknown method or parameters.
  """
  out = Path(out)
  wanted = settings(method, params, binary)
  _check_folder(out, wanted, overwrite)
  out.mkdir(parents=True, exist_ok=True)
  (out / SETTINGS_FILE).write_text(json.dumps(wanted, indent=2) + '\n')
  todo = [p for p in images if overwrite or not (out / f'{p.stem}.png').is_file()]
  args = (out, method, wanted['params'], binary)
  if todo and method in saliency.FOLDER_METHODS and network is None:
    network = fit_self_training(
      [images], out / SELF_TRAINING_DIR, wanted['params'], workers=workers, progress=progress
    )[-1]
  bar = tqdm(total=len(todo), desc='pseudo-masks', unit='image', disable=not progress)
  try:
    if method in saliency.FOLDER_METHODS:
      _write_predicted(todo, out, network, wanted['params'], binary, bar)
    elif workers <= 1:
      for path in todo:
        _write_one(path, *args)
        bar.update()
    else:
      # Spawned, not forked: the caller may be a multithreaded JAX process.
      context = multiprocessing.get_context('spawn')
      with futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
        try:
          for done in futures.as_completed([pool.submit(_write_one, p, *args) for p in todo]):
            done.result()
            bar.update()
        except BaseException:
          # Stop at the first failure; what was written stays for a resumed run.
          pool.shutdown(wait=True, cancel_futures=True)
          raise
  finally:
    bar.close()
  return len(todo)


def cached_samples(
  folders: Sequence,
  cache_root,
  method: str = saliency.DEFAULT_METHOD,
  params=None,
  *,
  binary: bool = False,
  workers: int = 1,
  progress: bool = True,
) -> list[stills.StillSample]:
  """The images of `folders` with their pseudo-masks (soft, or 0/255 with `binary`), computed
  once under `<cache_root>/<cache_key>/<i>-<folder name>/` and reused by later runs of the same
  settings; returns one `StillSample` per image, folder after folder. A folder method
  (`self_trained`) trains one network over all the folders, its state under
  `<cache_root>/<cache_key>/.self_training/`."""
  key = cache_key(method, params, binary)
  network = None
  if method in saliency.FOLDER_METHODS:
    # One network over the images of every folder.
    network = fit_self_training(
      [list_images(folder) for folder in folders],
      Path(cache_root) / key / SELF_TRAINING_DIR,
      params,
      workers=workers,
      progress=progress,
    )[-1]
  samples = []
  for i, folder in enumerate(folders):
    out = Path(cache_root) / key / f'{i}-{Path(folder).name}'
    write_masks(
      list_images(folder),
      out,
      method,
      params,
      binary=binary,
      workers=workers,
      progress=progress,
      network=network,
    )
    samples += stills.list_folder(folder, out)
  return samples
