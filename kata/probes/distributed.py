"""Worker targets for the distributed topic's tests (spec/11-distributed.md).

A test starts the master's manager itself and runs these in real worker
processes (``multiprocessing.Process``, under the test's start method). They
import the module under test by name, so spawn and forkserver children find
the learner's package too, and report through a ``multiprocessing`` queue as
``(kind, ...)`` tuples: a forkserver child's stdout is not the test's.

``kata/probes/distributed_unguarded.py`` is the other probe: the note's
master as a script without its main guard (DIST-10).
"""

from __future__ import annotations

import importlib
import os
import socket
from multiprocessing import connection
from typing import Any

from kata.probes import GATE_LIMIT


def connect_without_nagle() -> None:
    """Make this process's multiprocessing clients set ``TCP_NODELAY`` (idempotent).

    Every new connection to a manager ends its handshake with two small
    writes in a row, which Nagle's algorithm holds for the server's delayed
    ACK: 44 ms per connection instead of 0.3 ms (spec/11-distributed.md,
    ``benchmarks/bench.py``). The tests turn Nagle off in the test process
    and in the workers they start, so a test costs what its behaviour costs;
    what a worker does, and what the test sees, is the same.
    """
    client = connection.SocketClient
    if getattr(client, "kata_nodelay", False):
        return

    def socket_client(address: Any) -> connection.Connection:
        conn = client(address)
        s = socket.socket(fileno=conn.fileno())
        try:
            if s.family in (socket.AF_INET, socket.AF_INET6):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        finally:
            s.detach()  # the descriptor stays the connection's
        return conn

    socket_client.kata_nodelay = True  # type: ignore[attr-defined]
    connection.SocketClient = socket_client


def _report_errors(lines: Any, run: Any) -> None:
    """Run ``run()``; an exception goes to ``lines`` as ``("error", text)`` and ends the child with 1."""
    try:
        lines.put(("done", run()))
    except BaseException as exc:
        lines.put(("error", f"{type(exc).__name__}: {exc}"))
        raise SystemExit(1) from None


def run_worker(module_name: str, authkey: bytes, host: str, port: int, idle: float, lines: Any) -> None:
    """Run the learner's ``worker()``; each line it says goes to ``lines`` as ``("line", text)``."""
    connect_without_nagle()
    module = importlib.import_module(module_name)

    def say(text: str) -> None:
        lines.put(("line", text))

    _report_errors(lines, lambda: module.worker(authkey, host, port, idle=idle, say=say))


def run_sharing_worker(
    module_name: str, authkey: bytes, host: str, port: int, idle: float, lines: Any, gate: Any
) -> None:
    """``connect_worker()`` and ``work()``; hold the first task at ``gate`` until the test opens it.

    Each task taken is reported as ``("task", pid, n)`` before the worker
    answers it, so the test sees which process took which task.
    """
    connect_without_nagle()
    module = importlib.import_module(module_name)
    held = []

    def on_task(n: int) -> None:
        lines.put(("task", os.getpid(), n))
        if not held:
            held.append(n)
            gate.wait(GATE_LIMIT)

    def run() -> int:
        manager = module.connect_worker(authkey, host, port)
        return module.work(manager, idle=idle, say=lambda text: None, on_task=on_task)

    _report_errors(lines, run)
