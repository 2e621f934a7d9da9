"""The GIL, measured: CPU time / wall time of busy threads and busy processes (spec/09-gil.md).

Run ``python -m solutions.gil`` for the note's experiment, bounded: busy-loop
threads, then busy-loop processes, for ``--seconds`` each, and the number of
cores each really used. A ratio near 1 is one core; near N is N cores.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import sysconfig
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any


def gil_enabled() -> bool:
    """GIL-5: True when this interpreter runs with a GIL (every build before 3.13, and default builds)."""
    is_enabled = getattr(sys, "_is_gil_enabled", None)
    return True if is_enabled is None else is_enabled()


def free_threaded_build() -> bool:
    """GIL-5: True on a free-threaded build (``python3.13t``), whether or not the GIL was turned back on."""
    return bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


def switch_interval() -> float:
    """GIL-1: how long a thread may hold the GIL while others wait for it, in seconds (0.005)."""
    return sys.getswitchinterval()


def loop(stop: Any) -> None:
    """GIL-2, GIL-3: the note's busy loop (``x = x ^ 1``), until ``stop`` (an Event) is set.

    Pure Python: it holds the GIL whenever it runs. It looks at ``stop`` every
    10,000 steps, so it ends soon after ``stop`` is set.
    """
    x = 0
    while not stop.is_set():
        for _ in range(10_000):
            x = x ^ 1


def start_threads(work: Callable[..., object], args_list: Iterable[tuple]) -> list[threading.Thread]:
    """GIL-2, GIL-4, GIL-5: start one thread per tuple of ``args_list``, running ``work(*args)``; return them.

    They all run in this process, at the same time; the caller joins them.
    """
    threads = [threading.Thread(target=work, args=args) for args in args_list]
    for t in threads:
        t.start()
    return threads


def start_processes(work: Callable[..., object], args_list: Iterable[tuple]) -> list[Any]:
    """GIL-3: start one process per tuple of ``args_list``, running ``work(*args)``; return them.

    Each process has its own interpreter and its own GIL. ``work`` must be a
    module-level function (spawn pickles it); the caller joins them.
    """
    processes = [multiprocessing.Process(target=work, args=args) for args in args_list]
    for p in processes:
        p.start()
    return processes


def overlap(n: int, block: Callable[[], object]) -> float:
    """GIL-4: ``n`` threads each call ``block()`` (a sleep, a read) at the same time; return the wall time.

    A blocking call releases the GIL, so the waits overlap: ``n`` sleeps of 1 s take about 1 s.
    """
    start = time.perf_counter()
    for t in start_threads(block, [()] * n):
        t.join()
    return time.perf_counter() - start


def cpu_ratio_of_threads(n: int, seconds: float) -> float:
    """GIL-6: ``n`` threads run ``loop``; return this process's CPU time / wall time over ``seconds``.

    About 1 on a GIL build (one core, whatever ``n``); up to ``n`` with the GIL off.
    """
    stop = threading.Event()
    threads = start_threads(loop, [(stop,)] * n)
    wall, cpu = time.perf_counter(), time.process_time()
    time.sleep(seconds)  # the measurement window
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    stop.set()
    for t in threads:
        t.join()
    return cpu / wall


def _timed_loop(ready: Any, stop: Any, cpu_times: Any) -> None:
    """Child process target: wait until all are ready, run ``loop``, report this process's CPU time."""
    ready.wait()
    start = time.process_time()
    loop(stop)
    cpu_times.put(time.process_time() - start)


def cpu_ratio_of_processes(n: int, seconds: float) -> float:
    """GIL-6: ``n`` processes run ``loop``; return their CPU time together / wall time over ``seconds``.

    Each process has its own GIL: up to ``n`` cores, if the machine has them free.
    """
    ready, stop, cpu_times = multiprocessing.Barrier(n + 1), multiprocessing.Event(), multiprocessing.Queue()
    processes = start_processes(_timed_loop, [(ready, stop, cpu_times)] * n)
    ready.wait()
    wall = time.perf_counter()
    time.sleep(seconds)  # the measurement window
    stop.set()
    wall = time.perf_counter() - wall
    cpu = sum(cpu_times.get() for _ in processes)
    for p in processes:
        p.join()
    return cpu / wall


def main(seconds: float = 1.0, n: int = 0) -> None:
    """GIL-6: the note's busy loops, bounded: cores used by ``n`` threads, then by ``n`` processes."""
    n = n or os.cpu_count() or 1
    build = "GIL" if gil_enabled() else "free-threaded, GIL off"
    print(f"Python {sys.version.split()[0]} ({build}), {os.cpu_count()} CPUs", end=", ")
    print(f"switch interval {switch_interval()} s", flush=True)
    print(f"{n} busy threads:   CPU/wall = {cpu_ratio_of_threads(n, seconds):.2f}", flush=True)
    print(f"{n} busy processes: CPU/wall = {cpu_ratio_of_processes(n, seconds):.2f}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="how long each experiment runs")
    parser.add_argument("-n", type=int, default=0, help="threads and processes (default: CPU count)")
    parser.add_argument("--start-method", choices=multiprocessing.get_all_start_methods())
    args = parser.parse_args()
    if args.start_method:
        multiprocessing.set_start_method(args.start_method)
    main(args.seconds, args.n)
