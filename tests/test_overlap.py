"""Host work beside the engine: reading ahead, per-frame work ahead in order, writing behind."""

import threading
import time

import pytest

from shls_jax.io import overlap


def test_prefetch_keeps_order_and_reads_ahead():
  produced = []

  def items():
    for i in range(10):
      produced.append(i)
      yield i

  stream = overlap.prefetch(items(), depth=3)
  assert next(stream) == 0
  time.sleep(0.2)
  # The thread has read ahead, but no further than its bound (+ the item it holds).
  assert 2 <= len(produced) <= 5
  assert list(stream) == list(range(1, 10))


def test_prefetch_raises_the_producers_error_in_the_consumer():
  def items():
    yield 1
    raise OSError('disk gone')

  stream = overlap.prefetch(items())
  assert next(stream) == 1
  with pytest.raises(OSError, match='disk gone'):
    next(stream)


def test_ordered_map_returns_results_in_input_order():
  def slow_for_small(i):
    time.sleep(0.01 * (5 - i % 5))
    return i * i

  assert list(overlap.ordered_map(slow_for_small, range(12), workers=3, ahead=4)) == [
    i * i for i in range(12)
  ]


def test_writer_runs_calls_in_order_on_its_thread_and_reports_failures():
  done, threads = [], set()

  def write(i):
    threads.add(threading.current_thread().name)
    done.append(i)

  with overlap.Writer(depth=2) as writer:
    for i in range(6):
      writer.submit(write, i)
  assert done == list(range(6)) and threads == {'writer'}

  def fail():
    raise OSError('no space left on device')

  writer = overlap.Writer()
  writer.submit(fail)
  with pytest.raises(OSError, match='no space left'):
    writer.close()
