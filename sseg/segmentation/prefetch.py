"""Run an iterator ahead in a background thread: decoding overlaps the work on its output.

PyAV decodes and scales frames with the GIL released, and so do torch's kernels, so a
decoder thread and a model on the main thread use two cores where one loop used one:
``for frame in prefetched(video.frames(...)):`` yields the same items in the same order.
At most ``depth`` items wait in the queue (memory stays bounded); an exception in the
producer is raised in the consumer; stopping early (``close()``, or dropping the iterator) stops
the producer and closes its iterator in its own thread. The thread starts when
:func:`prefetched` is called, not at the first item.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
_POLL_SECONDS = 0.05


class _End:
    """End of the stream, with the producer's exception if it failed."""

    def __init__(self, error: BaseException | None):
        self.error = error


class Prefetched(Iterator[T]):
    """The items of an iterable, produced up to ``depth`` ahead in a thread that starts
    at once (so work can begin before the consumer is ready for it)."""

    def __init__(self, items: Iterable[T], depth: int = 32):
        if depth < 1:
            raise ValueError(f"depth must be positive, got {depth}")
        self._waiting: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(
            target=_produce, args=(items, self._waiting, self._stop), name="sseg-prefetch",
            daemon=True,
        )  # fmt: skip
        self._thread.start()

    def __next__(self) -> T:
        if self._done:
            raise StopIteration
        item = self._waiting.get()
        if isinstance(item, _End):
            self.close()
            if item.error is not None:
                raise item.error
            raise StopIteration
        return item

    def close(self) -> None:
        """Stop the producer (its iterator is closed in its own thread) and wait for it."""
        self._done = True
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join()

    def __del__(self) -> None:
        if hasattr(self, "_thread"):  # not when __init__ refused its arguments
            self.close()


def _produce(items: Iterable, waiting: queue.Queue, stop: threading.Event) -> None:
    def offer(item: object) -> bool:
        """Put ``item`` unless the consumer stopped; False once it has."""
        while not stop.is_set():
            try:
                waiting.put(item, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    iterator = iter(items)
    error: BaseException | None = None
    try:
        for item in iterator:
            if not offer(item):
                break
    except BaseException as exc:  # noqa: BLE001 - handed to the consumer
        error = exc
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()
    offer(_End(error))


def prefetched(items: Iterable[T], depth: int = 32) -> Prefetched[T]:
    """Yield the items of ``items``, produced up to ``depth`` ahead in a thread."""
    return Prefetched(items, depth)
