"""Host work taken off a video's critical path: reading ahead in a thread, per-frame work on a
bounded pool of threads (results in order), and writing behind in a thread.

Threads rather than processes: what runs there (JPEG and PNG coding, OpenCV resizing and video
writing, scikit-image's SLIC) spends its time in C code that releases the GIL, and frames need no
pickling. Every queue is bounded, so a slow consumer holds at most a few frames. An exception in
a thread is raised again in the caller, at its next read or at the end.
"""

import collections
import concurrent.futures
import queue
import threading
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar('T')
R = TypeVar('R')

_DONE = object()


def prefetch(items: Iterable[T], depth: int = 4) -> Iterator[T]:
  """`items` produced by a thread up to `depth` ahead of the consumer, in order.

  The thread stops when the consumer does (the generator is closed or collected)."""
  buffer: queue.Queue = queue.Queue(maxsize=depth)
  stop = threading.Event()

  def produce():
    try:
      for item in items:
        while not stop.is_set():
          try:
            buffer.put((item, None), timeout=0.1)
            break
          except queue.Full:
            continue
        if stop.is_set():
          return
      buffer.put((_DONE, None))
    except BaseException as error:  # noqa: BLE001 - handed to the consumer, raised there
      buffer.put((_DONE, error))

  thread = threading.Thread(target=produce, name='prefetch', daemon=True)
  thread.start()
  try:
    while True:
      item, error = buffer.get()
      if error is not None:
        raise error
      if item is _DONE:
        return
      yield item
  finally:
    stop.set()


def ordered_map(
  fn: Callable[[T], R], items: Iterable[T], workers: int = 2, ahead: int = 4
) -> Iterator[R]:
  """`fn(item)` for each item, computed by `workers` threads at most `ahead` items in advance,
  yielded in the items' order."""
  with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix='ahead') as pool:
    pending = collections.deque()
    for item in items:
      pending.append(pool.submit(fn, item))
      if len(pending) > ahead:
        yield pending.popleft().result()
    while pending:
      yield pending.popleft().result()


class Writer:
  """Runs calls in order on one thread behind the caller (at most `depth` waiting).

  Use as a context manager: leaving it waits for every call; the first exception of a call is
  raised at the next `submit` or on leaving.
  """

  def __init__(self, depth: int = 8):
    self._calls: queue.Queue = queue.Queue(maxsize=depth)
    self._error: BaseException | None = None
    self._thread = threading.Thread(target=self._run, name='writer', daemon=True)
    self._thread.start()

  def _run(self):
    while True:
      call = self._calls.get()
      if call is _DONE:
        return
      if self._error is None:
        try:
          call()
        except BaseException as error:  # noqa: BLE001 - raised again in the caller
          self._error = error

  def _raise(self):
    if self._error is not None:
      error, self._error = self._error, None
      raise error

  def submit(self, fn: Callable, *args) -> None:
    """Queues fn(*args)."""
    self._raise()
    self._calls.put(lambda: fn(*args))

  def close(self) -> None:
    """Waits for every queued call; raises the first exception of one."""
    if self._thread.is_alive():
      self._calls.put(_DONE)
      self._thread.join()
    self._raise()

  def __enter__(self) -> 'Writer':
    return self

  def __exit__(self, kind, value, traceback) -> None:
    if kind is None:
      self.close()
      return
    # Already failing: let the queued writes finish, but report the first failure.
    self._calls.put(_DONE)
    self._thread.join()
