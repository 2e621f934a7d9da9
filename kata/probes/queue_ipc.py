"""Targets for tests/test_queue_ipc.py: writers and readers that the test controls.

A reader held at a gate waits on a ``multiprocessing.Semaphore(0)``, not an
Event: it is terminated while it waits, and a process killed inside
``Event.wait`` leaves the Event unusable (the next ``set()`` blocks for ever).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kata.probes import GATE_LIMIT


def put_all(q: Any, values: Iterable[Any]) -> None:
    """The note's writer without prints or sleeps: put each value, no sentinel."""
    for value in values:
        q.put(value)


def read_one_then_wait(q: Any, got: Any, gate: Any) -> None:
    """Get one item, report it on ``got``, then wait at ``gate`` (a reader busy with its item)."""
    got.put(q.get())
    gate.acquire(timeout=GATE_LIMIT)


def put_big(q: Any, size: int) -> None:
    """Put one item of ``size`` bytes: more than a pipe buffer when ``size`` > 64 KiB."""
    q.put(b"x" * size)
