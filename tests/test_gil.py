"""Tests of spec/09-gil.md: the switch interval, threads vs processes on cores, blocking threads.

Timing claims are ratios of CPU time to wall time over windows the test
controls, of the test's own busy work (kata/probes/gil.py) run in the threads
or processes that the code under test starts. Bounds from above hold under any
load; "more than one core" is tried in a few short rounds and skipped, with the
figures, when the machine does not have the cores free now. Rounds are recorded
as the user property ``gil_rounds`` and printed.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import re
import sys
import sysconfig
import threading
import time

import pytest

from kata import reaper, testing
from kata.probes import gil as gil_probes

#: One measurement window, in seconds.
WINDOW = 0.1
#: At most this many windows to see more than one core.
ROUNDS = 20
#: "About one core": CPU/wall of busy threads on a GIL build stays at or below this.
ONE_CORE = 1.3
#: "More than one core": CPU/wall above this.
PARALLEL = 1.2
#: Busy threads in the thread tests; busy processes in the process test.
THREADS, PROCESSES = 4, 2

GIL_BUILD = getattr(sys, "_is_gil_enabled", lambda: True)()


def _cpus() -> int:
    """CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@pytest.fixture
def gil(impl):
    return impl("gil")


def _window_of_this_process() -> float:
    """CPU/wall of this whole process over one window (the calling thread only waits)."""
    cpu, wall = time.process_time(), time.perf_counter()
    time.sleep(WINDOW)  # sleep-ok: the measurement window; the busy threads are the behaviour
    return (time.process_time() - cpu) / (time.perf_counter() - wall)


def _rounds(measure, what: str, record_property) -> list[float]:
    """Up to ROUNDS windows until one is above PARALLEL; record and print them; skip if none was."""
    figures: list[float] = []
    while len(figures) < ROUNDS:
        figures.append(measure())
        if figures[-1] > PARALLEL:
            break
    shown = ", ".join(f"{f:.2f}" for f in figures)
    record_property("gil_rounds", len(figures))
    record_property("cpu_per_wall", shown)
    print(f"{testing.spec_prefix()}: {what}: CPU/wall per round {shown} ({len(figures)} round(s))")
    if figures[-1] <= PARALLEL:
        pytest.skip(
            f"{testing.spec_prefix()}: {what} got CPU/wall {shown} in {len(figures)} rounds of {WINDOW} s, "
            f"never above {PARALLEL}: other processes keep the cores busy now, so more than one core "
            "cannot be shown (the structure was checked)"
        )
    return figures


class BusyThreads:
    """The test's spinners, started by the learner's ``start_threads``; stopped and joined on exit."""

    def __init__(self, gil, n: int) -> None:
        self.n, self.started, self.stop = n, [], threading.Event()
        self.threads: list = []
        self.gil = gil

    def __enter__(self) -> BusyThreads:
        try:
            self._start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _start(self) -> None:
        call = testing.Background(
            self.gil.start_threads, gil_probes.thread_spinner, [(self.started, self.stop)] * self.n
        )
        self.threads = call.result(
            f"start_threads(work, args_list) to start {self.n} threads and return them "
            "(do not run work yourself, do not join: the work runs until the caller stops it)"
        )
        testing.until(lambda: len(self.started) >= self.n, f"{self.n} threads to run the test's work")
        threads = {t for t, _ in self.started}
        pids = {pid for _, pid in self.started}
        assert len(self.started) == self.n and len(threads) == self.n, (
            f"the work ran {len(self.started)} times in {len(threads)} thread(s), expected {self.n} threads"
        )
        assert pids == {os.getpid()}, f"the work ran in processes {pids}, expected threads of this process"
        assert threading.current_thread() not in threads, "the work ran in the caller's thread"

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t, _ in self.started:
            if t is not threading.current_thread():
                testing.join(t, "a busy thread to stop")


# ---------------------------------------------------------------- GIL-1


@pytest.mark.spec("GIL-1")
def test_the_default_switch_interval_is_5_ms():
    run = testing.run_program(
        [
            sys.executable,
            "-c",
            "import sys; print(sys.getswitchinterval(), hasattr(sys, 'setcheckinterval'))",
        ],
        "a fresh interpreter to print its switch interval",
    )
    assert run.stdout.split() == ["0.005", "False"], (
        f"a fresh {sys.version.split()[0]} printed {run.stdout.strip()!r}: expected a switch interval of "
        "0.005 s and no sys.setcheckinterval (Python 2's 100-bytecode rule, gone since 3.9)"
    )


@pytest.mark.spec("GIL-1")
def test_switch_interval_reports_the_current_value(gil):
    before = sys.getswitchinterval()
    try:
        sys.setswitchinterval(0.002)
        seen = gil.switch_interval()
    finally:
        sys.setswitchinterval(before)
    assert seen == pytest.approx(0.002), (
        f"switch_interval() returned {seen!r} after sys.setswitchinterval(0.002): "
        "return sys.getswitchinterval(), not a constant"
    )


# ---------------------------------------------------------------- GIL-2


class CountingStop:
    """A stand-in for ``stop``: ``is_set()`` turns true on its ``after``-th call."""

    def __init__(self, after: int) -> None:
        self.after, self.calls = after, 0

    def is_set(self) -> bool:
        self.calls += 1
        return self.calls >= self.after


@pytest.mark.spec("GIL-2", "GIL-3")
def test_loop_runs_until_stop_is_set(gil):
    stop = CountingStop(after=3)
    call = testing.Background(gil.loop, stop)
    call.result("loop(stop) to return once stop.is_set() is true (check it in the loop)")
    assert stop.calls == 3, f"loop called stop.is_set() {stop.calls} times, expected it to stop at the 3rd"


@pytest.mark.spec("GIL-2")
@pytest.mark.skipif(
    not GIL_BUILD, reason="GIL-2: free-threaded build with the GIL off: threads run at once (GIL-5)"
)
def test_busy_threads_use_about_one_core(gil, record_property):
    with BusyThreads(gil, THREADS):
        ratio = _window_of_this_process()
    record_property("cpu_per_wall", f"{ratio:.2f}")
    assert ratio <= ONE_CORE, (
        f"{THREADS} busy threads used {ratio:.2f} cores (CPU/wall over {WINDOW} s), expected at most "
        f"{ONE_CORE} on a GIL build: only the thread holding the GIL runs Python code"
    )


# ---------------------------------------------------------------- GIL-3


@pytest.mark.spec("GIL-3")
def test_busy_processes_use_more_than_one_core(gil, start_method, record_property):
    if _cpus() < 2:
        pytest.skip(f"GIL-3: this machine gives this process {_cpus()} CPU: one core cannot show parallelism")
    pipes = [multiprocessing.Pipe() for _ in range(PROCESSES)]
    processes = []
    try:
        call = testing.Background(gil.start_processes, gil_probes.spinner, [(child,) for _, child in pipes])
        processes = call.result(
            f"start_processes(work, args_list) to start {PROCESSES} processes and return them (do not join)"
        )
        pids = [
            testing.recv(parent, "a process from start_processes to run the test's spinner")
            for parent, _ in pipes
        ]
        assert len(set(pids)) == PROCESSES and os.getpid() not in pids, (
            f"the test's work ran in PIDs {pids}; expected {PROCESSES} processes other than the test's "
            f"({os.getpid()}): use multiprocessing.Process, not threads"
        )

        def measure() -> float:
            wall = time.perf_counter()
            for parent, _ in pipes:
                parent.send("go")
            time.sleep(WINDOW)  # sleep-ok: the measurement window; the spinners are the behaviour
            for parent, _ in pipes:
                parent.send("stop")
            wall = time.perf_counter() - wall
            return sum(testing.recv(parent, "a spinner to report its CPU time") for parent, _ in pipes) / wall

        _rounds(measure, f"{PROCESSES} busy processes ({start_method})", record_property)
    finally:
        for parent, _ in pipes:
            with contextlib.suppress(OSError):
                parent.send(None)
        for p in processes if isinstance(processes, list) else []:
            if isinstance(p, multiprocessing.process.BaseProcess):
                testing.join(p, "a spinner process to end")


# ---------------------------------------------------------------- GIL-4


@pytest.mark.spec("GIL-4")
def test_blocked_threads_are_all_blocked_at_once(gil):
    n = 4
    all_in = threading.Barrier(n, timeout=5.0)
    broken: list[str] = []

    def block() -> None:
        try:
            all_in.wait()
        except threading.BrokenBarrierError:
            broken.append(threading.current_thread().name)

    call = testing.Background(gil.overlap, n, block)
    try:
        wall = call.result(f"overlap({n}, block) to run {n} blocking calls at once and return")
    finally:
        all_in.abort()
    assert not broken, (
        f"the {n} blocking calls did not all wait at once (a barrier for {n} never opened): "
        "start all the threads before joining any"
    )
    assert isinstance(wall, float) and wall >= 0, (
        f"overlap returned {wall!r}, expected the wall time in seconds"
    )


@pytest.mark.spec("GIL-4")
def test_n_sleepers_finish_in_about_one_sleep(gil):
    n, nap = 10, 0.1

    def block() -> None:
        time.sleep(nap)  # sleep-ok: a blocking call is the behaviour under test

    start = time.perf_counter()
    returned = testing.Background(gil.overlap, n, block).result(f"overlap({n}, sleep {nap} s) to return")
    wall = time.perf_counter() - start
    assert nap <= returned <= wall, (
        f"overlap returned {returned!r} s; the call took {wall:.3f} s and every sleep {nap} s: "
        "return the wall time from before starting the threads to after joining them"
    )
    assert wall < n * nap / 2, (
        f"{n} threads sleeping {nap} s each took {wall:.3f} s, expected about {nap} s "
        f"(under {n * nap / 2:.1f}): "
        "a sleeping thread releases the GIL, so start them all, then join"
    )


# ---------------------------------------------------------------- GIL-5


@pytest.mark.spec("GIL-5")
def test_gil_enabled_reports_the_build(gil):
    expected = sys._is_gil_enabled() if hasattr(sys, "_is_gil_enabled") else True
    assert gil.gil_enabled() is expected, (
        f"gil_enabled() returned {gil.gil_enabled()!r} on {sys.version.split()[0]}, expected {expected} "
        "(sys._is_gil_enabled() where it exists, else True)"
    )
    built = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    assert gil.free_threaded_build() is built, (
        f"free_threaded_build() returned {gil.free_threaded_build()!r}, expected {built} "
        "(sysconfig.get_config_var('Py_GIL_DISABLED'))"
    )


@pytest.mark.spec("GIL-5")
def test_gil_enabled_asks_sys_where_it_can(gil, monkeypatch):
    monkeypatch.setattr(sys, "_is_gil_enabled", lambda: False, raising=False)
    assert gil.gil_enabled() is False, (
        "gil_enabled() returned True while sys._is_gil_enabled() returned False (a free-threaded build "
        "with the GIL off): return sys._is_gil_enabled() where it exists"
    )
    monkeypatch.delattr(sys, "_is_gil_enabled")
    assert gil.gil_enabled() is True, (
        "gil_enabled() did not return True on a Python without sys._is_gil_enabled (before 3.13 there "
        "is always a GIL): use getattr(sys, '_is_gil_enabled', None) and return True when it is None"
    )


@pytest.mark.spec("GIL-5")
@pytest.mark.parametrize("flag", [1, 0])
def test_free_threaded_build_reads_py_gil_disabled(gil, monkeypatch, flag):
    real = sysconfig.get_config_vars

    def config_vars(*names):
        found = {**real(), "Py_GIL_DISABLED": flag}
        return [found.get(name) for name in names] if names else found

    monkeypatch.setattr(sysconfig, "get_config_vars", config_vars)  # get_config_var() reads it too
    assert gil.free_threaded_build() is bool(flag), (
        f"free_threaded_build() returned {gil.free_threaded_build()!r} where "
        f"sysconfig.get_config_var('Py_GIL_DISABLED') is {flag}, expected {bool(flag)}"
    )


@pytest.mark.spec("GIL-5")
@pytest.mark.skipif(
    GIL_BUILD, reason="GIL-5: GIL build: threads take turns on one core (GIL-2); needs python3.13t"
)
def test_busy_threads_use_more_than_one_core_with_the_gil_off(gil, record_property):
    if _cpus() < 2:
        pytest.skip(f"GIL-5: this machine gives this process {_cpus()} CPU: one core cannot show parallelism")
    with BusyThreads(gil, THREADS):
        _rounds(_window_of_this_process, f"{THREADS} busy threads, GIL off", record_property)


# ---------------------------------------------------------------- GIL-6


@pytest.mark.spec("GIL-6")
def test_demo_prints_the_build_and_both_ratios(demo):
    run = demo("gil", "--seconds", str(WINDOW), "-n", "2")
    assert run.returncode == 0, testing.cut(run.stderr)
    lines = run.stdout.splitlines()
    assert len(lines) == 3, f"expected 3 lines, got:\n{run.stdout}"
    assert "switch interval 0.005 s" in lines[0], f"first line: {lines[0]!r}"
    assert re.search(r"\bGIL\b", lines[0]), (
        f"the first line does not name the build (a GIL build, or free-threaded with the GIL off): "
        f"{lines[0]!r}"
    )
    assert lines[1].startswith("2 busy threads:") and lines[2].startswith("2 busy processes:"), "\n".join(
        lines
    )
    threads, processes = (float(line.rsplit("=", 1)[1]) for line in lines[1:])
    assert processes > 0, f"the processes used no CPU: {lines[2]!r}"
    if GIL_BUILD:
        assert threads <= ONE_CORE, f"on a GIL build 2 busy threads reported {threads} cores: {lines[1]!r}"


@pytest.mark.spec("GIL-6")
def test_cpu_ratio_of_threads_runs_n_loops_for_the_window_then_joins_them(gil, monkeypatch):
    n, seconds = 3, 2 * WINDOW
    entered: list[tuple[threading.Thread, int]] = []
    stop_seen: list[float] = []
    gate = threading.Event()

    def held_loop(stop) -> None:
        """Stands in for loop(): notes its thread, waits for stop, then for the test's gate."""
        entered.append((threading.current_thread(), os.getpid()))
        if stop.wait(testing.WAIT):
            stop_seen.append(time.perf_counter())
        gate.wait(testing.WAIT)

    monkeypatch.setattr(gil.module, "loop", held_loop)
    start = time.perf_counter()
    call = testing.Background(gil.cpu_ratio_of_threads, n, seconds)
    try:
        testing.until(
            lambda: len(stop_seen) >= n or not call.thread.is_alive(),
            f"cpu_ratio_of_threads({n}, {seconds}) to run loop(stop) in {n} threads, then set stop",
        )
        call.parked_in(
            "join", "threading.py", f"joining the {n} loop threads, which end only when the test lets them"
        )
    finally:
        gate.set()
    ratio = call.result(f"cpu_ratio_of_threads({n}, {seconds}) to return once its threads end")
    threads = {t for t, _ in entered}
    assert len(entered) == n == len(threads), (
        f"loop ran {len(entered)} times in {len(threads)} thread(s), expected once in each of {n} threads"
    )
    assert {pid for _, pid in entered} == {os.getpid()} and call.thread not in threads, (
        "loop ran in the caller's thread or in another process: start threads of this process"
    )
    assert not any(t.is_alive() for t in threads), "cpu_ratio_of_threads returned before its threads ended"
    waited = min(stop_seen) - start
    assert waited >= 0.9 * seconds, (
        f"stop was set {waited:.3f} s after the call, expected after the window of {seconds} s: "
        "measure over `seconds` (sleep), then set stop"
    )
    assert isinstance(ratio, float) and ratio >= 0, f"returned {ratio!r}, expected CPU time / wall time"


@pytest.mark.spec("GIL-6")
def test_cpu_ratio_of_processes_measures_the_window_and_joins_them(gil, start_method):
    seconds = 2 * WINDOW
    before = set(reaper.descendants())
    start = time.perf_counter()
    ratio = testing.Background(gil.cpu_ratio_of_processes, 1, seconds).result(
        f"cpu_ratio_of_processes(1, {seconds}) to run one busy process over the window and return"
    )
    took = time.perf_counter() - start
    left = set(reaper.descendants()) - before - reaper.run_helpers()
    assert not left, (
        f"cpu_ratio_of_processes returned with its processes {sorted(left)} not joined "
        "(still running, or exited and never reaped): join every process before returning"
    )
    assert took >= 0.9 * seconds, (
        f"cpu_ratio_of_processes(1, {seconds}) returned after {took:.3f} s, expected a window of "
        f"{seconds} s: let the processes run for `seconds` before setting stop"
    )
    assert isinstance(ratio, float) and ratio >= 0, f"returned {ratio!r}, expected CPU time / wall time"
