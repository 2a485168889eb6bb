"""The learning-curve record: CSV round trip (resumed runs append), PNG drawing."""

from shls_jax.training import curves


def test_curve_rows_round_trip_and_merge_by_step(tmp_path):
  path = tmp_path / curves.CURVE_CSV
  assert curves.read_curve(path) == []
  rows = [
    {'step': 50, 'J&F-Mean': 0.5, 'baseline J&F-Mean': 0.4, 'loss': 1.5},
    {'step': 0, 'J&F-Mean': 0.2, 'baseline J&F-Mean': 0.4},
  ]
  curves.write_curve(path, rows)
  read = curves.read_curve(path)
  assert [r['step'] for r in read] == [0, 50]
  assert read[1] == rows[0] and 'loss' not in read[0]
  # A resumed run appends; a repeated step keeps the newest row.
  curves.write_curve(path, read + [{'step': 50, 'J&F-Mean': 0.6, 'baseline J&F-Mean': 0.4}])
  assert [r['J&F-Mean'] for r in curves.read_curve(path)] == [0.2, 0.6]


def test_plot_writes_a_png(tmp_path):
  path = tmp_path / curves.CURVE_PNG
  curves.plot_curve(
    path,
    [
      {'step': 0, 'J&F-Mean': 0.2, 'baseline J&F-Mean': 0.4},
      {'step': 10, 'J&F-Mean': 0.5, 'baseline J&F-Mean': 0.4, 'loss': 2.0, 'ce': 1.0},
    ],
    title='run',
  )
  assert path.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_plot_of_several_runs_writes_a_png(tmp_path):
  path = tmp_path / 'modes.png'
  rows = [{'step': 0, 'J&F-Mean': 0.2, 'baseline J&F-Mean': 0.4, 'loss': 2.0}]
  curves.plot_curves(path, {'pmap': rows, 'reference': rows}, title='modes')
  assert path.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
