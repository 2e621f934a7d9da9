"""Targets and helpers that tests pass into child processes (shared by all topics).

They live in an importable module (not in a test function) so that spawn and
forkserver children can import them. Each reports what it saw through the
queue or connection it is given; none sleeps to wait for anything.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from typing import Any

#: A child held at a gate gives up after this long, in case the test died
#: without releasing it (the reaper normally kills it long before).
GATE_LIMIT = 60.0


def report_identity(channel: Any, *args: Any) -> None:
    """Put ``(args, pid, ppid, parent_process().pid)`` on a queue: who ran the target, with what."""
    parent = multiprocessing.parent_process()
    channel.put((args, os.getpid(), os.getppid(), parent.pid if parent else None))


def return_none() -> None:
    """A target that ends normally."""


def exit_with(code: Any) -> None:
    """A target that calls ``sys.exit(code)``."""
    sys.exit(code)


def raise_error(message: str = "boom from the child") -> None:
    """A target that raises an uncaught exception."""
    raise ValueError(message)


def announce_and_wait(started: Any, gate: Any) -> None:
    """Set ``started``, then block until ``gate`` is set (both Events)."""
    started.set()
    gate.wait(GATE_LIMIT)


def gated_run_proc(started: Any, gate: Any, lines: Any, name: str) -> None:
    """The note's ``run_proc``, held at a gate: set ``started``, wait, then report its line.

    The line goes to the ``lines`` queue, not to stdout: a forkserver child's
    stdout is the forkserver's, not the test's captured one.
    """
    started.set()
    gate.wait(GATE_LIMIT)
    lines.put(f"Run Child process {name} ({os.getpid()})...")
