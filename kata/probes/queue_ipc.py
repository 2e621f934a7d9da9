"""Targets for tests/test_queue_ipc.py: writers and readers that the test controls.

A reader held at a gate waits on a ``multiprocessing.Semaphore(0)``, not an
Event: it is terminated while it waits, and a process killed inside
``Event.wait`` leaves the Event unusable (the next ``set()`` blocks for ever).
"""

from __future__ import annotations

import sys
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


def run_with_stdout(path: str, done: Any, gate: Any, func: Any, *args: Any) -> None:
    """Make ``sys.stdout`` the block-buffered file ``path``, call ``func(*args)``, then wait at ``gate``.

    ``done`` is released when ``func`` has returned: the test then reads the
    file while this process is alive, so it finds only what ``func`` flushed.
    """
    sys.stdout = open(path, "w", encoding="utf-8")  # noqa: SIM115 - this process's stdout for its life
    func(*args)
    done.release()
    gate.acquire(timeout=GATE_LIMIT)
