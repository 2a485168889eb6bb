"""Times DAVIS scoring (`score_results`) of the sample OSVOS results with 1 and 2 workers.

Usage: python benchmarks/scoring.py [--davis_root DIR] [--results DIR] [--repeats N]
Defaults point at ../shared/data/davis2016-sample and its results/osvos-binarized masks.
"""

import argparse
import time
from pathlib import Path

from shls_jax.data import davis
from shls_jax.evaluation import scoring

_SAMPLE = Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'davis2016-sample'


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--davis_root', type=Path, default=_SAMPLE)
  parser.add_argument(
    '--results',
    type=Path,
    default=None,
    help='results folder (default: <davis_root>/results/osvos-binarized)',
  )
  parser.add_argument('--repeats', type=int, default=3, help='best of N runs per setting')
  args = parser.parse_args()
  results = args.results or args.davis_root / 'results' / 'osvos-binarized'
  sequences = davis.list_sequences(args.davis_root, 'val')
  # Scored frames: every annotated frame but the first and the last.
  frames = sum(len(davis.frame_paths(args.davis_root, s)) - 2 for s in sequences)

  print(f'{"workers":>7} {"sequences":>9} {"frames":>6} {"seconds":>8} {"frames/s":>8}')
  for workers in (1, 2):
    best = float('inf')
    for _ in range(args.repeats):
      start = time.perf_counter()
      scoring.score_results(
        args.davis_root, results, sequences, single_object=True, workers=workers
      )
      best = min(best, time.perf_counter() - start)
    print(f'{workers:>7} {len(sequences):>9} {frames:>6} {best:>8.2f} {frames / best:>8.1f}')


if __name__ == '__main__':
  main()
