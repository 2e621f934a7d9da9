"""Tests of spec/03-pool.md: Pool size, the 5th task, close/join, errors, results, `with`.

Every test that starts a pool runs once per start method. Tasks report
``("start", name, pid)`` and ``("end", name, pid)`` on a queue and wait at a
gate (an Event) that the test opens, so "4 at once" is proven by structure:
with exactly 4 workers, each held by one task, a 5th task cannot run. The
gates and the queue reach the workers through the pool's initializer
(kata/probes/pool.py). The learner function that blocks runs in a
``testing.Background`` thread; every wait is bounded.

Process starts per test (workers; the same under every start method):
POOL-1 4, POOL-2 5, POOL-3 0, POOL-4 2 + 2, POOL-5 1, POOL-6 1, POOL-7 2 + 2,
POOL-8 1 + 1, POOL-9 1, POOL-10 one interpreter + 4 workers, and 1.
(Measured by counting BaseProcess.start per test: 20 per start method, demos aside;
the POOL-4 exit-gate and POOL-10 flush tests, added after, start 2 and 1 more: 23.)
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import re
import sys
from collections.abc import Iterator
from multiprocessing.pool import RemoteTraceback
from typing import Any

import psutil
import pytest

from kata import testing
from kata.probes import pool as tasks


@pytest.fixture
def pool(impl, start_method):
    return impl("pool")


def _children() -> set[int]:
    return {p.pid for p in multiprocessing.active_children()}


class Gated:
    """``n`` gates (task ``i`` waits on gate ``i``, a Semaphore(0)) and the queue the tasks report on."""

    def __init__(self, n: int) -> None:
        self.gates = [multiprocessing.Semaphore(0) for _ in range(n)]
        self.reports: Any = multiprocessing.Queue()
        self.initargs = (self.gates, self.reports)

    def open(self, *names: int) -> None:
        for name in names or range(len(self.gates)):
            self.gates[name].release()  # a second release is harmless: one task waits per gate


@contextlib.contextmanager
def running(gated: Gated, func: Any, *args: Any) -> Iterator[testing.Background]:
    """Run ``func(*args)`` in the background; at the end open every gate and let it finish (bounded)."""
    bg = testing.Background(func, *args)
    try:
        yield bg
    finally:
        gated.open()
        bg.thread.join(testing.WAIT)


def expect_starts(bg: testing.Background, gated: Gated, count: int, first: tuple | None = None) -> dict:
    """Collect ``count`` start reports (``first`` already read); return {task: pid}."""
    started: dict[int, int] = {}
    report = first
    while len(started) < count:
        if report is None:
            report = bg.next(gated.reports, f"{count} tasks to start (got {len(started)}: {started})")
        kind, name, pid = report
        if kind != "start":
            testing.fail(f"task {name} ended while every gate was closed: {report}")
        started[name] = pid
        report = None
    return started


def pool_size_message(got: int, expected: int) -> str:
    return f"the pool has {got} worker processes, expected Pool({expected}): {expected}" + (
        f" (Pool() with no size makes {os.cpu_count()} here: pass the size you are given)"
        if got == os.cpu_count()
        else ""
    )


# ---------------------------------------------------------------- POOL-1, 2


@pytest.mark.spec("POOL-1")
def test_pool4_runs_4_and_the_5th_starts_in_a_freed_worker(pool):
    before = _children()
    gated = Gated(5)
    with running(gated, pool.run_tasks, tasks.gated_task, 5, 4, tasks.init_gates, gated.initargs) as bg:
        first = bg.next(gated.reports, "the first task to start")
        workers = _children() - before
        assert len(workers) == 4, pool_size_message(len(workers), 4)
        started = expect_starts(bg, gated, 4, first)
        assert sorted(started) == [0, 1, 2, 3], f"the first 4 tasks to start were {sorted(started)}"
        assert len(set(started.values())) == 4, f"4 tasks running at once should be in 4 PIDs: {started}"
        # 4 workers, each held at its task's gate: task 4 cannot have started (pigeonhole).
        gated.open(3)
        end = bg.next(gated.reports, "task 3 to end after its gate opened")
        assert end == ("end", 3, started[3]), f"expected task 3 to end in {started[3]}, got {end}"
        nxt = bg.next(gated.reports, "task 4 to start once task 3's worker was free")
        assert nxt == ("start", 4, started[3]), (
            f"task 4 should start in the worker task 3 freed (PID {started[3]}); got {nxt}"
        )
        gated.open()
        results = bg.result("run_tasks() to return once every gate was open")
    assert sorted(results) == sorted([*((i, started[i]) for i in range(4)), (4, started[3])]), results


@pytest.mark.spec("POOL-2")
def test_pool5_runs_all_5_at_once(pool):
    before = _children()
    gated = Gated(5)
    with running(gated, pool.run_tasks, tasks.gated_task, 5, 5, tasks.init_gates, gated.initargs) as bg:
        first = bg.next(gated.reports, "the first task to start")
        workers = _children() - before
        assert len(workers) == 5, pool_size_message(len(workers), 5)
        started = expect_starts(bg, gated, 5, first)
        assert len(set(started.values())) == 5, f"5 tasks running at once should be in 5 PIDs: {started}"
        gated.open()
        results = bg.result("run_tasks() to return once every gate was open")
    assert results == [(i, started[i]) for i in range(5)], results


# ------------------------------------------------------------------ POOL-3


def _expected_default() -> int:
    if sys.version_info >= (3, 13):
        return os.process_cpu_count() or 1
    return os.cpu_count() or 1


@pytest.mark.spec("POOL-3")
def test_default_size(impl):
    got = impl("pool").default_pool_size()
    expected = _expected_default()
    assert got == expected, f"default_pool_size() returned {got!r}; Pool() makes {expected} workers here"


@pytest.mark.spec("POOL-3")
@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="CPU affinity: Linux only")
def test_default_size_and_cpu_affinity(impl):
    pool = impl("pool")
    saved = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(saved)})
    try:
        got = pool.default_pool_size()
        expected = _expected_default()
    finally:
        os.sched_setaffinity(0, saved)
    why = (
        "from 3.13 Pool() uses os.process_cpu_count(), which counts only the CPUs this process may use"
        if sys.version_info >= (3, 13)
        else "before 3.13 Pool() uses os.cpu_count(), every CPU of the machine, whatever the affinity"
    )
    assert got == expected, (
        f"with this process pinned to 1 CPU, default_pool_size() returned {got!r}, expected {expected}: {why}"
    )


@pytest.mark.spec("POOL-3")
@pytest.mark.parametrize("minor", [12, 13])
def test_default_size_rule_by_version(impl, monkeypatch, minor):
    """The rule on both sides of 3.13, and 1 when the count is unknown (os functions faked)."""
    pool = impl("pool")
    pool.default_pool_size()  # a stub fails here, before anything is faked
    counts = {"cpu_count": 5, "process_cpu_count": 3}
    monkeypatch.setattr(os, "cpu_count", lambda: counts["cpu_count"])
    if minor >= 13:
        monkeypatch.setattr(os, "process_cpu_count", lambda: counts["process_cpu_count"], raising=False)
    else:  # as on 3.12, where it does not exist
        monkeypatch.delattr(os, "process_cpu_count", raising=False)
    monkeypatch.setattr(sys, "version_info", (3, minor, 0, "final", 0))
    got = pool.default_pool_size()
    counts.update(cpu_count=None, process_cpu_count=None)
    unknown = pool.default_pool_size()
    monkeypatch.undo()
    expected = 3 if minor >= 13 else 5
    which = "os.process_cpu_count()" if minor >= 13 else "os.cpu_count()"
    assert got == expected, (
        f"on Python 3.{minor}, with os.cpu_count() == 5 and os.process_cpu_count() == 3, default_pool_size() "
        f"returned {got!r}: Pool() uses {which} there ({expected})"
    )
    assert unknown == 1, (
        f"on Python 3.{minor}, when {which} returns None (unknown), default_pool_size() returned "
        f"{unknown!r}: Pool() uses 1 then"
    )


# ------------------------------------------------------------------ POOL-4


def _inside_pool_module(bg: testing.Background) -> str | None:
    """ "ended", "waiting" (blocked in multiprocessing/pool.py: join or get) or None."""
    if not bg.thread.is_alive():
        return "ended"
    frame = sys._current_frames().get(bg.thread.ident)
    while frame is not None:
        if frame.f_code.co_filename.replace("\\", "/").endswith("multiprocessing/pool.py"):
            return "waiting"
        frame = frame.f_back
    return None


@pytest.mark.spec("POOL-4")
def test_close_then_join_waits_for_every_task(pool):
    before = _children()
    gated = Gated(2)
    with running(gated, pool.run_tasks, tasks.gated_task, 2, 2, tasks.init_gates, gated.initargs) as bg:
        started = expect_starts(bg, gated, 2)
        gated.open(0)
        end = bg.next(gated.reports, "task 0 to end after its gate opened")
        assert end[:2] == ("end", 0), end
        state = testing.until(lambda: _inside_pool_module(bg), "run_tasks() to wait for task 1")
        if state == "ended":
            bg.result("run_tasks()")  # raises what it raised (e.g. ValueError: Pool is still running)
            testing.fail(f"run_tasks() returned {bg.value!r} while task 1 was still running")
        gated.open(1)
        results = bg.result("run_tasks() to return once both tasks ended")
    assert results == [(0, started[0]), (1, started[1])], results
    left = _children() - before
    assert not left, (
        f"run_tasks() returned but left {len(left)} pool workers running: call pool.close(), then pool.join()"
    )


def _in_pool_join(bg: testing.Background) -> bool:
    frame = sys._current_frames().get(bg.thread.ident)
    while frame is not None:
        code = frame.f_code
        if code.co_name == "join" and code.co_filename.replace("\\", "/").endswith("multiprocessing/pool.py"):
            return True
        frame = frame.f_back
    return False


@pytest.mark.spec("POOL-4")
def test_join_waits_for_the_workers_to_exit(pool):
    """Each worker, when it exits, waits at a gate: run_tasks() must still be in Pool.join() then.

    Without join(), run_tasks() returns once the results are in; the pool object
    is then collected and its finalizer terminates the workers (SIGTERM) instead
    of letting them exit.
    """
    exiting, leave = multiprocessing.Semaphore(0), multiprocessing.Semaphore(0)
    before = _children()
    bg = testing.Background(pool.run_tasks, tasks.echo_pid, 2, 2, tasks.init_exit_gate, (exiting, leave))
    try:
        at_exit = []

        def where() -> str | None:
            while exiting.acquire(False):
                at_exit.append(1)
            if not bg.thread.is_alive():
                return "ended"
            return "joining" if len(at_exit) == 2 and _in_pool_join(bg) else None

        state = testing.until(where, "both workers to reach their exit, with run_tasks() in pool.join()")
        if state == "ended":
            bg.result("run_tasks()")  # raises what it raised
            testing.fail(
                f"run_tasks() returned while {2 - len(at_exit)} of its 2 workers had not exited yet: "
                "after pool.close(), call pool.join(), which waits for every worker process to end"
            )
    finally:
        leave.release()
        leave.release()
    results = bg.result("run_tasks() to return once its workers could exit")
    assert [r[0] for r in results] == [0, 1], f"run_tasks() returned {results!r}"
    left = _children() - before
    assert not left, f"run_tasks() returned but left {len(left)} pool workers running"


# -------------------------------------------------------------- POOL-5, 6


@contextlib.contextmanager
def one_worker() -> Iterator[Any]:
    p = multiprocessing.Pool(1)
    try:
        yield p
    finally:
        p.terminate()
        p.join()


def _get(result: Any, what: str) -> Any:
    try:
        return result.get(testing.WAIT)
    except multiprocessing.TimeoutError:
        testing.fail(f"timed out after {testing.WAIT:g} s waiting for {what}")


@pytest.mark.spec("POOL-5")
def test_join_before_close_raises(pool):
    with one_worker() as p:
        try:
            err = pool.join_before_close(p)
        except ValueError as exc:
            testing.fail(f"join_before_close() let {exc!r} escape: catch it and return it")
        assert isinstance(err, ValueError) and str(err) == "Pool is still running", (
            f"join_before_close() returned {err!r}, expected ValueError('Pool is still running')"
        )
        value = _get(p.apply_async(tasks.echo_pid, ("still",)), "the pool to run a task after join()")
        assert value[0] == "still", "the pool should still take tasks: join() before close() changes nothing"


@pytest.mark.spec("POOL-6")
def test_apply_async_after_close_raises(pool):
    with one_worker() as p:
        try:
            err = pool.submit_after_close(p, tasks.echo_pid, ("late",))
        except ValueError as exc:
            testing.fail(f"submit_after_close() let {exc!r} escape: catch it and return it")
        assert isinstance(err, ValueError) and str(err) == "Pool not running", (
            f"submit_after_close() returned {err!r}, expected ValueError('Pool not running')"
        )


# ------------------------------------------------------------------ POOL-7


@pytest.mark.spec("POOL-7")
def test_apply_async_results_come_in_task_order(pool):
    gated = Gated(2)
    with running(gated, pool.run_tasks, tasks.gated_task, 2, 2, tasks.init_gates, gated.initargs) as bg:
        started = expect_starts(bg, gated, 2)
        gated.open(1)  # task 1 ends first
        assert bg.next(gated.reports, "task 1 to end")[:2] == ("end", 1)
        gated.open(0)
        results = bg.result("run_tasks() to return")
    assert results == [(0, started[0]), (1, started[1])], (
        f"run_tasks() returned {results}; task 1 ended first, but results come in task order: "
        "keep the AsyncResults in a list and get() each"
    )


@pytest.mark.spec("POOL-7")
def test_map_results_come_in_item_order(pool):
    gated = Gated(3)
    args = (tasks.gated_task, [0, 1, 2], 2, tasks.init_gates, gated.initargs)
    with running(gated, pool.map_in_order, *args) as bg:
        started = expect_starts(bg, gated, 2)
        assert sorted(started) == [0, 1], f"with 2 workers, items 0 and 1 should start first: {started}"
        gated.open(1)
        assert bg.next(gated.reports, "item 1 to end")[:2] == ("end", 1)
        assert bg.next(gated.reports, "item 2 to start in the freed worker")[:2] == ("start", 2)
        gated.open(2)
        assert bg.next(gated.reports, "item 2 to end")[:2] == ("end", 2)
        # Items 1 and 2 have ended; item 0 ends last. Its "end" report is not awaited:
        # leaving `with Pool` terminates the workers, which may drop a report not yet flushed.
        gated.open(0)
        results = bg.result("map_in_order() to return")
    names = [r[0] for r in results] if isinstance(results, list) else results
    assert names == [0, 1, 2], f"the items ended in the order 1, 2, 0; map should return 0, 1, 2: {names}"


# ------------------------------------------------------------------ POOL-8


@pytest.mark.spec("POOL-8")
def test_task_exception_reaches_the_caller(pool):
    with one_worker() as p:
        value, pid = testing.Background(pool.call_in_pool, p, tasks.echo_pid, ("x",)).result(
            "a task's result"
        )
        assert value == "x", f"call_in_pool returned {value!r}, expected the task's result"
        failing = testing.Background(pool.call_in_pool, p, tasks.fail_task, (7,))
        with pytest.raises(ValueError, match="task 7 failed") as info:
            failing.result("the failing task")
        assert isinstance(info.value.__cause__, RemoteTraceback), "the worker's traceback should be the cause"
        assert "fail_task" in str(info.value.__cause__)
        again, pid2 = testing.Background(pool.call_in_pool, p, tasks.echo_pid, ("y",)).result("the next task")
        assert (again, pid2) == ("y", pid), "the worker should survive a task's exception and run the next"


@pytest.mark.spec("POOL-8")
def test_task_exception_is_not_swallowed(pool):
    with one_worker() as p:
        bg = testing.Background(pool.call_in_pool, p, tasks.fail_task, (3,))
        bg.thread.join(testing.WAIT)
        if bg.thread.is_alive():
            testing.fail("call_in_pool() did not return for a failing task")
        assert isinstance(bg.error, ValueError), (
            f"call_in_pool() for a task that raised ValueError returned {bg.value!r} / raised {bg.error!r}: "
            "get() raises the task's exception, let it through"
        )


# ------------------------------------------------------------------ POOL-9


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.spec("POOL-9")
def test_leaving_with_terminates_unfinished_work(pool):
    gated = Gated(1)
    seen: list = []
    before = _children()
    workers: list[int] = []

    def before_leaving() -> None:
        seen.append(testing.get(gated.reports, "the task to start inside the with block"))
        workers.append(len(_children() - before))

    with running(
        gated, pool.leave_with_block, tasks.gated_task, (0,), tasks.init_gates, gated.initargs, before_leaving
    ) as bg:
        result = bg.result(
            "leave_with_block() to return: leaving `with Pool(...)` terminates the task, it does not wait"
        )
    assert seen and seen[0][:2] == ("start", 0), f"the task should have started inside the block: {seen}"
    assert workers == [1], f"the with block's pool had {workers} worker processes, expected Pool(1): 1"
    pid = seen[0][2]
    assert hasattr(result, "ready"), f"leave_with_block() should return the AsyncResult, got {result!r}"
    assert not result.ready(), "the task's result is ready: the task was not killed by leaving the block"
    testing.until(lambda: _gone(pid), f"the worker {pid} to be gone after the with block")


# ----------------------------------------------------------------- POOL-10


@pytest.mark.spec("POOL-10")
def test_demo_prints_the_transcript_and_timeline(demo, start_method):
    run = demo("pool", "--start-method", start_method)
    assert run.returncode == 0, f"the demo exited with {run.returncode}:\n{testing.cut(run.stderr)}"
    lines = run.stdout.splitlines()
    text = "\n".join(lines)
    assert lines and re.fullmatch(r"Parent process \d+\.", lines[0]), text
    assert "Waiting for all subprocesses done..." in lines, text
    done = lines.index("All subprocesses done.") if "All subprocesses done." in lines else -1
    assert done > 0, f"no 'All subprocesses done.' line:\n{text}"
    run_at, end_at, pid_of = {}, {}, {}
    for i, line in enumerate(lines[:done]):
        if m := re.fullmatch(r"Run task (\d) \((\d+)\)\.\.\.", line):
            run_at[int(m[1])], pid_of[int(m[1])] = i, int(m[2])
        elif m := re.fullmatch(r"Task (\d) runs \d+\.\d\d seconds\.", line):
            end_at[int(m[1])] = i
    assert sorted(run_at) == sorted(end_at) == [0, 1, 2, 3, 4], f"each task's two lines, once:\n{text}"
    assert all(run_at[t] < end_at[t] for t in range(5)), text
    assert len(set(pid_of.values())) <= 4, f"Pool(4) ran the tasks in more than 4 PIDs:\n{text}"
    before_4 = [t for t in range(4) if pid_of[t] == pid_of[4] and end_at[t] < run_at[4]]
    assert before_4, f"task 4 should start in the PID of a task that ended before it:\n{text}"
    rows = [ln for ln in lines[done:] if ln.startswith("worker ")]
    assert len(rows) == len(set(pid_of.values())), f"one timeline row per worker:\n{text}"
    assert any(ln.startswith("Task 4 waited") for ln in lines[done:]), (
        f"the timeline should say task 4 waited:\n{text}"
    )
    assert any(re.fullmatch(r"Timeline of Pool\(4\) \([\d.]+ s a column\):", ln) for ln in lines[done:]), (
        f"no 'Timeline of Pool(4) (... s a column):' heading:\n{text}"
    )
    check_timeline(rows, pid_of, text)


def check_timeline(rows: list[str], pid_of: dict[int, int], text: str) -> None:
    """The timeline's shape, whatever the timing: one row per worker, equal widths, every task shown.

    A task's digit fills the columns it ran in; only the next task in the same
    worker can take its last column, and each of tasks 0-3 spans several.
    The last column is that of the task that ended last.
    """
    cells = {}
    for row in rows:
        m = re.fullmatch(r"worker +(\d+) \|(.*)\|", row)
        assert m, f"a timeline row should read 'worker PID |cells|': {row!r}\n{text}"
        cells[int(m[1])] = m[2]
    widths = {len(c) for c in cells.values()}
    assert len(widths) == 1 and widths != {0}, f"the timeline's rows should have one width:\n{text}"
    assert all(set(c) <= set("01234 ") for c in cells.values()), (
        f"a timeline cell is a task's digit or a blank:\n{text}"
    )
    for task, pid in pid_of.items():
        assert str(task) in cells.get(pid, ""), f"task {task} is missing from worker {pid}'s row:\n{text}"
    assert any(c[-1] != " " for c in cells.values()), (
        f"the timeline should end with the column where the last task ended:\n{text}"
    )


@pytest.mark.spec("POOL-10")
def test_task_lines_are_flushed_by_the_task(pool, tmp_path):
    """The task's two lines are in its worker's stdout (a block-buffered file) when the task returns."""
    pool.long_time_task(0, 0.0)  # a stub fails here; the lines go to the test's captured stdout
    out = tmp_path / "worker-stdout.txt"
    with multiprocessing.Pool(1, tasks.init_stdout, (str(out),)) as p:
        _, pid, _, _ = _get(p.apply_async(pool.module.long_time_task, (3, 0.0)), "long_time_task(3, 0.0)")
        written = out.read_text(encoding="utf-8")  # the worker is alive: only what it flushed is there
    expected = [re.escape(f"Run task 3 ({pid})..."), r"Task 3 runs \d+\.\d\d seconds\."]
    got = written.splitlines()
    assert len(got) == 2 and all(re.fullmatch(e, ln) for e, ln in zip(expected, got, strict=True)), (
        f"when long_time_task(3, 0.0) returned, its worker's stdout held {written!r}; expected lines "
        f"matching {expected}: flush after each line (sys.stdout.flush()), or a worker's lines wait in "
        "its buffer and come out of order with the others'"
    )
