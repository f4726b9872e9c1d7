"""Run an iterator ahead in a background thread: decoding overlaps the work on its output.

PyAV decodes and scales frames with the GIL released, and so do torch's kernels, so a
decoder thread and a model on the main thread use two cores where one loop used one:
``for frame in prefetched(video.frames(...)):`` yields the same items in the same order.
At most ``depth`` items wait in the queue (memory stays bounded); an exception in the
producer is raised in the consumer; stopping early (``break``, ``close()``) stops the
producer and closes its iterator in its own thread.
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


def prefetched(items: Iterable[T], depth: int = 32) -> Iterator[T]:
    """Yield the items of ``items``, produced up to ``depth`` ahead in a thread."""
    if depth < 1:
        raise ValueError(f"depth must be positive, got {depth}")
    waiting: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item: object) -> bool:
        """Put ``item`` unless the consumer stopped; False once it has."""
        while not stop.is_set():
            try:
                waiting.put(item, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
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

    thread = threading.Thread(target=produce, name="sseg-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = waiting.get()
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
            yield item
    finally:
        stop.set()
        thread.join()
