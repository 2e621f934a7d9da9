"""Probes for the gil topic (spec/09-gil.md): the tests' own busy work, for threads and processes.

The tests measure CPU time / wall time of *their* work, run in the threads or
processes that the code under test starts: so the figure says how many cores
those threads or processes got, whatever the learner's loop does.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

#: A spinner left waiting gives up after this long, in case the test died.
IDLE_LIMIT = 60.0


def _spin_until(ready: Any) -> None:
    """Pure-Python CPU work (the note's ``x ^= 1``) until ``ready()`` is true."""
    x = 0
    while not ready():
        for _ in range(10_000):
            x ^= 1


def thread_spinner(started: list, stop: threading.Event) -> None:
    """Thread work: note this thread in ``started`` (thread, pid), then spin until ``stop`` is set."""
    started.append((threading.current_thread(), os.getpid()))
    _spin_until(stop.is_set)


def spinner(conn: Any) -> None:
    """Process work: send this PID, then rounds on a Pipe; ``None`` ends it.

    A round: ``"go"`` starts spinning, the next message stops it, and the CPU
    time this process used in between goes back on ``conn``.
    """
    conn.send(os.getpid())
    while conn.poll(IDLE_LIMIT):
        if conn.recv() is None:
            return
        start = time.process_time()
        _spin_until(conn.poll)
        conn.recv()
        conn.send(time.process_time() - start)
