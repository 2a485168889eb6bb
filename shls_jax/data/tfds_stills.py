"""TensorFlow Datasets builder of a still-image saliency set (MSRA10K layout, manual download).

The builder reads `manual_dir` laid out as `stills.list_msra10k` expects (`Imgs/<name>.jpg`
with `<name>.png` masks beside them, optional `train.txt` / `val.txt`) and stores, per image,
the RGB image, its saliency mask (uint8 [H, W, 1], 0..255 = saliency x 255) and its name.
Splits follow the list files; without them everything is 'train'.

  builder = tfds_stills.StillImages(data_dir=DATA_DIR, file_format='array_record')
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=ROOT))
  source = tfds_stills.as_source(builder, 'train')  # for input_pipeline.create_split
"""

from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from shls_jax.data import stills


class StillImages(tfds.core.GeneratorBasedBuilder):
  """Still images with saliency pseudo-masks, from a manual directory."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Images, saliency masks and names.'}
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Place the images and masks in `manual_dir` in the MSRA10K layout: `Imgs/<name>.jpg` with the
  saliency mask `Imgs/<name>.png` of the same size, and optionally `train.txt` and `val.txt`
  listing image names.
  """

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
      features=tfds.features.FeaturesDict(
        {
          'image': tfds.features.Image(shape=(None, None, 3)),
          'mask': tfds.features.Image(shape=(None, None, 1)),
          'name': tfds.features.Text(),
        }
      ),
      supervised_keys=None,
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    root = Path(dl_manager.manual_dir)
    splits = [s for s in ('train', 'val') if (root / f'{s}.txt').is_file()]
    if not splits:
      return {'train': self._generate_examples(stills.list_msra10k(root))}
    return {s: self._generate_examples(stills.list_msra10k(root, s)) for s in splits}

  def _generate_examples(self, samples):
    for sample in samples:
      image, mask = stills.load_sample(sample)
      yield (
        sample.name,
        {
          'image': image,
          'mask': np.round(mask * 255).astype(np.uint8)[..., None],
          'name': sample.name,
        },
      )


class TfdsSource:
  """Random access to a prepared split as (RGB uint8 [H, W, 3], soft mask float32 [H, W])."""

  def __init__(self, data_source):
    if len(data_source) == 0:
      raise ValueError('the split holds no images')
    self._data = data_source

  def __len__(self) -> int:
    return len(self._data)

  def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
    example = self._data[index]
    return example['image'], example['mask'][..., 0].astype(np.float32) / 255.0


def as_source(builder: tfds.core.DatasetBuilder, split: str = 'train') -> TfdsSource:
  """Random-access source of a prepared builder's split (needs the array_record file format)."""
  return TfdsSource(builder.as_data_source(split=split))
