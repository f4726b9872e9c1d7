"""prefetched(): same items, same order, errors and early stops reach the other side."""

from __future__ import annotations

import threading
import time

import pytest

from sseg.segmentation.prefetch import prefetched


def _threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name == "sseg-prefetch"]


def test_yields_every_item_in_order_with_a_small_queue():
    assert list(prefetched(iter(range(1000)), depth=3)) == list(range(1000))
    assert list(prefetched([], depth=1)) == []
    assert not _threads()


def test_producer_runs_ahead_while_the_consumer_works():
    produced: list[int] = []

    def items():
        for i in range(8):
            produced.append(i)
            yield i

    stream = prefetched(items(), depth=4)
    assert next(stream) == 0
    deadline = time.monotonic() + 5
    while len(produced) < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(produced) == 5  # one taken + four waiting: the queue bounds it
    assert list(stream) == list(range(1, 8))


def test_the_producer_starts_before_the_first_item_is_asked_for():
    produced: list[int] = []

    def items():
        for i in range(3):
            produced.append(i)
            yield i

    stream = prefetched(items(), depth=8)  # e.g. decoding while models load
    deadline = time.monotonic() + 5
    while len(produced) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert produced == [0, 1, 2]
    assert list(stream) == [0, 1, 2] and not _threads()


def test_a_producer_error_is_raised_in_the_consumer_after_the_earlier_items():
    def failing():
        yield 1
        yield 2
        raise OSError("disk went away")

    seen = []
    with pytest.raises(OSError, match="disk went away"):
        for item in prefetched(failing(), depth=8):
            seen.append(item)
    assert seen == [1, 2] and not _threads()


def test_stopping_early_closes_the_producer_in_its_thread():
    closed = threading.Event()

    def endless():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    stream = prefetched(endless(), depth=2)
    assert [next(stream) for _ in range(3)] == [0, 1, 2]
    stream.close()
    assert closed.is_set() and not _threads()


def test_depth_must_be_positive():
    with pytest.raises(ValueError, match="depth must be positive"):
        list(prefetched([1], depth=0))
