"""Generators of progress steps whose return value is the result (``yield`` a step, ``return`` the result)."""

from __future__ import annotations

from collections.abc import Generator
from typing import TypeVar

T = TypeVar("T")


def drain(steps: Generator[object, None, T]) -> T:
    """Run a generator of progress steps to its end; its return value."""
    while True:
        try:
            next(steps)
        except StopIteration as stop:
            return stop.value
