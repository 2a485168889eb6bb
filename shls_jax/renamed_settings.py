"""Settings that were renamed: an old name is refused with its new one, on the command line
(`--config.<old>=...`) and in a config file (a key set on an unlocked config)."""

import ml_collections

# old dotted key -> what to write instead.
RENAMED = {
  'data.spx_capacity': 'data.superpixel_capacity',
  'data.cls_capacity': 'step.object_capacity (objects, background excluded: classes - 1)',
  'eval.superpixels.n_segments': 'eval.superpixels.slic_segments',
}


def renamed_in_flags(argv) -> str | None:
  """The message for the first `--config.<old key>` of `argv`, None when there is none."""
  for arg in argv:
    key = arg.split('=', 1)[0].removeprefix('--config.')
    if arg.startswith('--config.') and key in RENAMED:
      return f'--config.{key} is now --config.{RENAMED[key]}'
  return None


def check_config(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError when `config` sets a key under an old name."""
  for old, new in RENAMED.items():
    node = config
    for part in old.split('.'):
      node = node.get(part) if isinstance(node, ml_collections.ConfigDict) else None
    if node is not None:
      raise ValueError(f'config key {old} is now {new}')
