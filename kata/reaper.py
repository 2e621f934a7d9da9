"""Find and stop what a test left running: processes (at any depth) and threads.

Used by the plugin's autouse ``_kata_containment`` fixture. The forkserver and
the resource tracker are started on demand by ``multiprocessing`` and live for
the whole run: they are never counted as leaks, but their other children are.
No SIGTERM handler is installed anywhere: children are stopped with SIGKILL.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import time
from dataclasses import dataclass

import psutil

#: How long leftover threads get to finish by themselves before they count as leaked.
THREAD_GRACE = 1.0


@dataclass(frozen=True)
class Snapshot:
    pids: frozenset[int]
    threads: frozenset[int]


def run_helpers() -> set[int]:
    """PIDs of multiprocessing's long-lived helper processes in this process."""
    helpers = set()
    with contextlib.suppress(Exception):
        from multiprocessing import forkserver

        helpers.add(forkserver._forkserver._forkserver_pid)
    with contextlib.suppress(Exception):
        from multiprocessing import resource_tracker

        helpers.add(resource_tracker._resource_tracker._pid)
    helpers.discard(None)
    return helpers


def descendants() -> dict[int, psutil.Process]:
    """Every live descendant of this process, by PID (zombies included)."""
    try:
        return {p.pid: p for p in psutil.Process().children(recursive=True)}
    except psutil.Error:
        return {}


def snapshot() -> Snapshot:
    return Snapshot(
        frozenset(descendants()),
        frozenset(t.ident for t in threading.enumerate() if t.ident is not None),
    )


def _describe(proc: psutil.Process) -> str:
    try:
        cmd = " ".join(proc.cmdline())[:60] or proc.name()
        return f"process {proc.pid} ({cmd}, {proc.status()})"
    except psutil.Error:
        return f"process {proc.pid}"


def clean_up(before: Snapshot) -> list[str]:
    """Stop new processes and wait a little for new threads; describe each leak."""
    leaks: list[str] = []
    helpers = run_helpers()
    # multiprocessing's own view first: kill and join, so its bookkeeping stays right.
    for child in multiprocessing.active_children():
        if child.pid in before.pids or child.pid in helpers:
            continue
        leaks.append(f"process {child.pid} ({child.name}, alive)")
        with contextlib.suppress(Exception):
            child.kill()
            child.join(5)
    for pid, proc in descendants().items():
        if pid in before.pids or pid in helpers:
            continue
        try:
            zombie = proc.status() == psutil.STATUS_ZOMBIE
        except psutil.Error:
            continue
        if not zombie:
            leaks.append(_describe(proc))
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
        if zombie:
            leaks.append(f"process {pid} (a zombie: exited but never reaped)")
        _reap(pid)
    leaks.extend(_leftover_threads(before))
    return leaks


def _reap(pid: int) -> None:
    """Collect the exit status of one of our children (no-op for others)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return  # not our child (a grandchild): its own parent reaps it
        if done:
            return
        time.sleep(0.001)  # sleep-ok: a SIGKILLed process is gone within a moment


def _leftover_threads(before: Snapshot) -> list[str]:
    deadline = time.monotonic() + THREAD_GRACE
    leftover = []
    for thread in threading.enumerate():
        if thread.ident in before.threads or thread.daemon:
            continue
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            leftover.append(f"thread {thread.name!r} (non-daemon, still running)")
    return leftover
