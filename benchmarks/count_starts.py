"""A pytest plugin for the benchmark: count the processes a test run starts.

Load it with ``-p count_starts`` (``benchmarks/`` on ``PYTHONPATH``) and set
``KATA_COUNT_STARTS=<file>``: at the end of the session (of each xdist worker)
it appends one JSON line with the counts made in that process:

* ``mp:<method>`` — ``multiprocessing`` processes started (``Process.start``:
  plain processes, pool workers, managers), by start method;
* ``fork`` — direct ``os.fork()`` calls (those made inside ``Process.start``
  are counted as ``mp:fork`` only);
* ``subprocess`` — ``subprocess.Popen`` programs (demos, scripts, real tools).

Only starts made by the test process itself are seen; a child that starts its
own children (a manager's worker, a program's pool) is one start here.
"""

from __future__ import annotations

import collections
import json
import multiprocessing
import multiprocessing.process
import os
import subprocess
import threading
from typing import Any

counts: collections.Counter[str] = collections.Counter()
_inside_start = threading.local()


def _method_of(process: Any) -> str:
    return getattr(process, "_start_method", None) or multiprocessing.get_start_method()


def _install() -> None:
    original_start = multiprocessing.process.BaseProcess.start
    original_fork = os.fork
    original_popen_init = subprocess.Popen.__init__
    me = os.getpid()

    def start(self: Any) -> None:
        if os.getpid() == me:
            counts[f"mp:{_method_of(self)}"] += 1
        _inside_start.active = True
        try:
            original_start(self)
        finally:
            _inside_start.active = False

    def fork() -> int:
        if os.getpid() == me and not getattr(_inside_start, "active", False):
            counts["fork"] += 1
        return original_fork()

    def popen_init(self: Any, *args: Any, **kwargs: Any) -> None:
        if os.getpid() == me:
            counts["subprocess"] += 1
        original_popen_init(self, *args, **kwargs)

    multiprocessing.process.BaseProcess.start = start  # type: ignore[method-assign]
    os.fork = fork
    subprocess.Popen.__init__ = popen_init  # type: ignore[method-assign]


def pytest_configure(config: Any) -> None:
    if os.environ.get("KATA_COUNT_STARTS"):
        _install()


def pytest_unconfigure(config: Any) -> None:
    path = os.environ.get("KATA_COUNT_STARTS")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(dict(counts)) + "\n")
