"""Pool tasks for tests/test_pool.py: tasks held at gates that the test opens.

A gate is a ``multiprocessing.Semaphore(0)``: the task acquires it, the test
opens it with ``release()``. Not an ``Event``: a process killed while it waits
on an Event (``terminate()``, leaving ``with Pool``) leaves the Event's
condition counting a sleeper that will never wake, and the next ``set()``
blocks for ever; a semaphore has no such state.

A multiprocessing ``Event`` or ``Semaphore`` cannot travel as a task argument (``RuntimeError:
Condition objects should only be shared between processes through
inheritance``), so the gates and the report queue reach each worker through
the pool's ``initializer``: :func:`init_gates` stores them in this module's
globals, in the worker, and :func:`gated_task` uses them.
"""

from __future__ import annotations

import multiprocessing.util
import os
import sys
from typing import Any

from kata.probes import GATE_LIMIT

_gates: list[Any] | None = None
_reports: Any = None


def init_gates(gates: list[Any], reports: Any) -> None:
    """Pool initializer: keep one gate per task (task ``i`` acquires ``gates[i]``) and the report queue."""
    global _gates, _reports
    _gates, _reports = gates, reports


def gated_task(name: int) -> tuple[int, int]:
    """Report ``("start", name, pid)``, wait until gate ``name`` is released, report ``("end", name, pid)``.

    Returns ``(name, pid)``. Raises if the pool was made without :func:`init_gates`.
    """
    if _gates is None:
        raise RuntimeError("gated_task ran in a worker made without initializer=init_gates")
    pid = os.getpid()
    _reports.put(("start", name, pid))
    if not _gates[name].acquire(timeout=GATE_LIMIT):
        raise TimeoutError(f"gate {name} was never opened")
    _reports.put(("end", name, pid))
    return name, pid


def fail_task(name: int) -> None:
    """A task that raises ``ValueError(f"task {name} failed")`` in the worker."""
    raise ValueError(f"task {name} failed")


def echo_pid(value: Any) -> tuple[Any, int]:
    """A task that returns ``(value, the worker's PID)``."""
    return value, os.getpid()


def _hold_exit(exiting: Any, leave: Any) -> None:
    """Run at the worker's exit: say so on ``exiting``, then wait at the ``leave`` gate."""
    exiting.release()
    leave.acquire(timeout=GATE_LIMIT)


def init_exit_gate(exiting: Any, leave: Any) -> None:
    """Pool initializer: hold this worker, when it exits, until the test releases ``leave``.

    A ``multiprocessing.util.Finalize`` with an exit priority runs when the
    worker's process ends normally (``Process._bootstrap`` calls
    ``util._exit_function``), after the last task, before the process is
    gone: so ``Pool.join()``, which waits for every worker to exit, waits for
    the test. A worker killed by ``terminate()`` never runs it.
    """
    multiprocessing.util.Finalize(None, _hold_exit, args=(exiting, leave), exitpriority=-10)


def init_stdout(path: str) -> None:
    """Pool initializer: the worker's ``sys.stdout`` becomes ``path``, block-buffered.

    What a task writes reaches the file only when it is flushed (or when the
    worker exits normally): the test reads the file while the worker is alive.
    """
    sys.stdout = open(path, "w", encoding="utf-8")  # noqa: SIM115 - the worker's stdout for its life
