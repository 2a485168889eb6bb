"""The paper's end-to-end SHLS training on MSRA10K pseudo-sequences, validated on DAVIS-2017.

  shls-train --config configs/msra10k.py --workdir workdir/msra10k \
      --config.data.root=MSRA10K [--config.data.mask_dir=saliency] \
      --config.eval.davis_root=DAVIS2017 [--export_torch shls.pth]

Self-supervised: still images with unsupervised saliency pseudo-masks become T = 3 frame
pseudo-sequences at 256x256; Adam at 1e-4 x the number of devices (constant, as the reference),
200 epochs of a third of the images each, both losses, nothing frozen. Validation segments a few
DAVIS-2017 val sequences every `eval_every_steps` (skipped while `eval.davis_root` is empty);
`<workdir>/checkpoints` keeps the latest states, `<workdir>/best` the one with the best
validation J&F-Mean. The paper reports a DAVIS-2017 val J&F-Mean of 68.5 after the full schedule
(not yet reproduced with this code); score a run with
`shls-evaluate --config configs/davis2017_val.py --checkpoint <workdir>/best`.
"""

import ml_collections

from configs import davis2017_val
from shls_jax.data import defaults as data_defaults
from shls_jax.training import defaults as step_defaults


def get_config() -> ml_collections.ConfigDict:
  config = davis2017_val.get_config()

  # Training source: an MSRA10K-layout folder (`stills.list_msra10k`).
  config.data = data_defaults.get_config()
  config.data.root = ''  # folder holding Imgs/ (and train.txt)
  config.data.split = ''  # '' = every image of Imgs/, else <root>/<split>.txt
  config.data.mask_dir = ''  # '' = masks beside the images; else a folder under root
  # 'msra10k' (the above) or 'folder': any folders of images (root, comma-separated), with the
  # masks of mask_dir, or without it unsupervised pseudo-masks of pseudo_mask_method
  # (`shls_jax.data.saliency`; parameter overrides in pseudo_mask_params) computed once into
  # <workdir>/pseudo_masks/<method>-<hash of the parameters>/ and reused by later runs.
  config.data.layout = 'msra10k'
  config.data.pseudo_mask_method = 'saliency_cut'
  config.data.pseudo_mask_params = ml_collections.ConfigDict()
  config.data.pseudo_mask_binary = False  # 0/255 masks (the method's binary rule), not soft
  config.data.pseudo_mask_workers = 2
  config.data.num_parallel_calls = 8  # pseudo-sequences generated concurrently per process

  # Network step: `shls_jax.training.train_step` (pmap over local devices, static shapes), or
  # 'reference': the exact batch-1 iteration of the reference with the host memory
  # (`shls_jax.training.reference_step`; one process, one sequence per step, slow).
  config.step_mode = 'pmap'
  config.step = step_defaults.get_config()
  # One setting: the pipeline pads its classes to the objects the step decodes (+ background).
  config.data.object_capacity = config.step.get_ref('object_capacity')
  config.batch_size_per_device = 1  # the reference trains on one sequence at a time

  # Schedule: num_epochs epochs of epoch_fraction x len(images) sequences (reference: a third);
  # num_train_steps > 0 replaces that count.
  config.num_epochs = 200
  config.epoch_fraction = 1 / 3
  config.num_train_steps = -1
  config.seed = 0
  config.init_checkpoint = ''  # start from these variables (.pth or orbax folder), not random

  config.log_every_steps = 50
  # The input pipeline restarts at every checkpoint step with a seed made of (seed, step), so
  # a resumed run sees exactly the batches of an uninterrupted one.
  config.checkpoint_every_steps = 1000
  config.keep_checkpoints = 2  # latest states kept in <workdir>/checkpoints
  config.eval_every_steps = 5000  # validation (and the best checkpoint); <= 0: never
  config.eval_at_start = False  # also validate the initial variables (step 0)

  # Validation: a few DAVIS-2017 val sequences at reduced size, fast inference mode.
  config.eval.sequences = 'bike-packing,blackswan,dog,soapbox'
  config.eval.size = (240, 432)
  config.inference.mode = 'fast'

  # Final export of a reference-format PyTorch checkpoint ('' = none); `train.py
  # --export_torch` sets it. export_best exports the best validated state instead of the last.
  config.export_torch = ''
  config.export_best = False
  config.export_overwrite = False
  return config
