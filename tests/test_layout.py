"""The package's shape: which room (role folder) may import which, one-way imports, commands as
leaves, and config files that load without the heavy frameworks."""

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / 'shls_jax'


def _module_name(path: Path) -> str:
  parts = path.relative_to(REPO).with_suffix('').parts
  return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def _is_module(name: str) -> bool:
  path = REPO / name.replace('.', '/')
  return path.with_suffix('.py').is_file() or path.is_dir()


def _imports() -> dict:
  """{module: set of shls_jax modules it imports (any nesting level)}."""
  graph = {}
  for path in PACKAGE.rglob('*.py'):
    deps = set()
    for node in ast.walk(ast.parse(path.read_text())):
      if isinstance(node, ast.ImportFrom) and (node.module or '').startswith('shls_jax'):
        for alias in node.names:
          full = f'{node.module}.{alias.name}'
          deps.add(full if _is_module(full) else node.module)
      elif isinstance(node, ast.Import):
        deps.update(a.name for a in node.names if a.name.startswith('shls_jax'))
    graph[_module_name(path)] = deps
  return graph


def _role(module: str) -> str:
  return module.split('.')[1] if '.' in module else module


def _closure(graph: dict, start: str) -> set:
  seen, todo = set(), [start]
  while todo:
    for dep in graph.get(todo.pop(), ()):
      if dep not in seen:
        seen.add(dep)
        todo.append(dep)
  return seen


# The rooms and what each may import (README "Layout"): the arrows of the architecture. A new
# arrow is a decision to make here, not an accident of a helper's location.
ALLOWED = {
  'ops': set(),
  'io': set(),
  'renamed_settings': set(),
  'superpixels': {'io', 'ops'},
  'model': {'ops'},
  'crops': {'ops'},
  'checkpoints': {'model'},
  'memory': {'model', 'ops', 'superpixels'},
  'data': {'io', 'superpixels'},
  'inference': {'crops', 'io', 'memory', 'model', 'superpixels'},
  'evaluation': {'checkpoints', 'data', 'inference', 'io', 'model', 'superpixels'},
  # The loop validates with the evaluator; the steps themselves never reach it (below).
  'training': {
    'checkpoints',
    'crops',
    'data',
    'evaluation',
    'memory',
    'model',
    'renamed_settings',
    'superpixels',
  },
  'parity': {'checkpoints', 'inference', 'memory', 'model', 'superpixels', 'training'},
  'tools': {
    'checkpoints',
    'data',
    'evaluation',
    'inference',
    'io',
    'memory',
    'parity',
    'renamed_settings',
    'superpixels',
    'training',
  },
}


def test_rooms_import_only_what_the_room_rules_allow():
  graph = _imports()
  rooms = {_role(m) for m in graph} - {'shls_jax'}
  assert rooms == set(ALLOWED), (
    f'rooms without a rule or rules without a room: {rooms ^ set(ALLOWED)}'
  )
  for module, deps in graph.items():
    room = _role(module)
    for dep in deps:
      if _role(dep) != room:
        assert _role(dep) in ALLOWED[room], (
          f'{module} imports {dep}: {room} may not import {_role(dep)}'
        )


def test_commands_are_leaves_with_an_installed_script():
  graph = _imports()
  for module, deps in graph.items():
    if _role(module) != 'tools':
      assert not [d for d in deps if _role(d) == 'tools'], f'{module} imports a command'
  tomllib = pytest.importorskip('tomllib', reason='tomllib is in the standard library from 3.11')
  scripts = tomllib.loads((REPO / 'pyproject.toml').read_text())['project']['scripts']
  targets = {target.split(':')[0] for target in scripts.values()}
  commands = {
    f'shls_jax.tools.{p.stem}'
    for p in (PACKAGE / 'tools').glob('*.py')
    if p.stem not in ('__init__', 'cli')
  }
  assert targets == commands
  for top in ('train.py', 'evaluate.py'):
    assert len((REPO / top).read_text().splitlines()) < 15, f'{top} is a thin wrapper'


def test_a_command_prints_its_flags_and_exits_zero_on_help():
  done = subprocess.run(
    [sys.executable, '-m', 'shls_jax.tools.segment', '--help'],
    capture_output=True,
    text=True,
    cwd=REPO,
  )
  assert done.returncode == 0, done.stderr[-2000:]
  assert '--video' in done.stdout and '--slic_segments' in done.stdout


def test_old_setting_names_are_refused_with_the_new_one():
  from shls_jax import renamed_settings

  message = renamed_settings.renamed_in_flags(['--config.data.spx_capacity=8'])
  assert 'data.superpixel_capacity' in message
  import ml_collections

  config = ml_collections.ConfigDict({'eval': {'superpixels': {'n_segments': 5}}})
  with pytest.raises(ValueError, match='eval.superpixels.slic_segments'):
    renamed_settings.check_config(config)


def test_role_folders_import_each_other_without_cycles():
  graph = _imports()
  roles = {}
  for module, deps in graph.items():
    roles.setdefault(_role(module), set()).update(
      _role(d) for d in deps if _role(d) != _role(module)
    )
  # Kahn's algorithm: every role must come off the graph.
  remaining = {role: set(deps) for role, deps in roles.items()}
  while remaining:
    leaves = [role for role, deps in remaining.items() if not deps & remaining.keys()]
    assert leaves, f'import cycle among {sorted(remaining)}: {remaining}'
    for role in leaves:
      del remaining[role]


def test_imports_point_one_way():
  graph = _imports()
  for module in graph:
    reached = {_role(m) for m in _closure(graph, module)}
    if _role(module) == 'data':
      assert 'evaluation' not in reached, module
    if module in ('shls_jax.training.train_step', 'shls_jax.training.reference_step'):
      assert 'inference' not in reached, module
    if _role(module) not in ('parity', 'tools'):
      assert 'parity' not in reached and 'tools' not in reached, module


def test_config_files_load_without_tensorflow_faiss_or_jax():
  code = f"""
import importlib, json, sys
sys.path.insert(0, {str(REPO)!r})
for name in {sorted(p.stem for p in (REPO / 'configs').glob('*.py'))!r}:
  importlib.import_module('configs.' + name).get_config()
heavy = ('tensorflow', 'tensorflow_datasets', 'faiss', 'jax', 'flax', 'torch')
print(json.dumps(sorted(m for m in heavy if m in sys.modules)))
"""
  out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
  assert json.loads(out.stdout.strip().splitlines()[-1]) == []


_BLOCKING_IMPORTER = """
import importlib, importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
  def find_spec(self, name, path=None, target=None):
    if name.split('.')[0] in {blocked!r}:
      raise ImportError(name + ' is made unimportable by the test')
sys.meta_path.insert(0, Block())
sys.path.insert(0, {repo!r})
for module in {modules!r}:
  importlib.import_module(module)
"""


def _import_without(modules, blocked):
  code = _BLOCKING_IMPORTER.format(blocked=set(blocked), repo=str(REPO), modules=list(modules))
  return subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)


def test_inference_evaluation_parity_and_steps_need_no_tensorflow():
  modules = [
    'shls_jax.inference.engine',
    'shls_jax.evaluation.evaluator',
    'shls_jax.evaluation.scoring',
    'shls_jax.parity.stages',
    'shls_jax.training.train_step',
    'shls_jax.training.reference_step',
    'shls_jax.memory.training_memory',
    'shls_jax.tools.convert',
    'shls_jax.tools.evaluate',
  ]
  done = _import_without(modules, ['tensorflow', 'tensorflow_datasets'])
  assert done.returncode == 0, done.stderr[-2000:]
  # The training step and inference with the on-device memory run where faiss is missing too
  # (an accelerator image without it).
  done = _import_without(
    [
      'shls_jax.training.train_step',
      'shls_jax.inference.engine',
      'shls_jax.memory.jax_memory',
    ],
    ['tensorflow', 'faiss'],
  )
  assert done.returncode == 0, done.stderr[-2000:]
  # The blocker works: the tf.data pipeline does need TensorFlow.
  done = _import_without(['shls_jax.data.input_pipeline'], ['tensorflow'])
  assert done.returncode != 0 and 'unimportable' in done.stderr


def test_score_only_imports_neither_jax_nor_tensorflow(davis_sample, tmp_path):
  results = tmp_path / 'osvos'
  shutil.copytree(
    davis_sample / 'results' / 'osvos-binarized', results, ignore=shutil.ignore_patterns('*.csv')
  )
  argv = [
    'evaluate.py',
    '--score_only',
    '--single_object',
    '--davis_root',
    str(davis_sample),
    '--results_dir',
    str(results),
    '--sequences',
    'car-shadow',
  ]
  code = (
    _BLOCKING_IMPORTER.format(
      blocked={'jax', 'jaxlib', 'flax', 'tensorflow', 'tensorflow_datasets', 'torch'},
      repo=str(REPO),
      modules=[],
    )
    + f"sys.argv = {argv!r}\nimport runpy\nrunpy.run_path({str(REPO / 'evaluate.py')!r}, run_name='__main__')\n"
  )
  done = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=REPO)
  assert done.returncode == 0, done.stderr[-2000:]
  assert 'car-shadow_1' in done.stdout
