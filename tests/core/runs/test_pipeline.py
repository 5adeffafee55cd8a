"""prefetch: results in input order, bounded read-ahead, early close stops the work."""

from __future__ import annotations

import threading
import time

import pytest

from fashionviewer.core.runs.pipeline import prefetch


def test_ordered_and_bounded():
    started: list[int] = []
    lock = threading.Lock()

    def work(i: int) -> int:
        with lock:
            started.append(i)
        time.sleep(0.002 * (i % 3))  # finish out of order
        return i * i

    consumed = 0
    for value in prefetch(range(30), work, workers=3, ahead=4):
        assert value == consumed * consumed
        consumed += 1
        time.sleep(0.003)  # a slow consumer: the pool must not run away
        with lock:
            assert len(started) - consumed <= 4, (len(started), consumed)
    assert consumed == 30 and sorted(started) == list(range(30))


def test_errors_surface_in_order_and_close_stops_early():
    def work(i: int) -> int:
        if i == 3:
            raise ValueError("bad item 3")
        return i

    gen = prefetch(range(100), work, workers=2, ahead=2)
    assert [next(gen) for _ in range(3)] == [0, 1, 2]
    with pytest.raises(ValueError, match="bad item 3"):
        next(gen)
    calls: list[int] = []
    gen = prefetch(range(1000), lambda i: calls.append(i) or i, workers=2, ahead=4)
    assert next(gen) == 0
    gen.close()
    assert len(calls) <= 6
    assert list(prefetch([1, 2, 3], lambda i: -i, workers=0)) == [-1, -2, -3]
