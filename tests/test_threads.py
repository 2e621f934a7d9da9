"""Tests of spec/07-threads.md: thread names, join, excepthook, daemon threads.

No start method here: threads are not processes. A learner function that
might hang runs in a daemon thread of the test, joined with a bound; a thread
the test holds waits at a gate (an Event) that the test opens. The daemon
items run a real program (``kata/probes/threads.py``).
"""

from __future__ import annotations

import queue
import re
import sys
import threading
from collections.abc import Callable
from typing import Any

import pytest

from kata import learner, testing

NOTE_TRANSCRIPT = [
    "thread MainThread is running...",
    "thread LoopThread is running...",
    *(f"thread LoopThread >>> {n}" for n in range(1, 6)),
    "thread LoopThread ended.",
    "thread MainThread ended.",
]


@pytest.fixture
def threads(impl):
    return impl("threads")


def in_thread(func: Callable[[], Any], name: str, what: str) -> Any:
    """Call ``func()`` in a daemon thread named ``name``; return its result or re-raise here."""
    box: queue.Queue = queue.Queue()

    def run() -> None:
        try:
            box.put((True, func()))
        except BaseException as exc:  # a stub's failure too: re-raised in the test below
            box.put((False, exc))

    worker = threading.Thread(target=run, name=name, daemon=True)
    worker.start()
    ok, value = testing.get(box, what)
    testing.join(worker, f"the thread {name!r} to end")
    if not ok:
        raise value
    return value


def join_threads_named(name: str) -> None:
    """Wait (bounded) for every thread called ``name`` to end."""
    for thread in threading.enumerate():
        if thread.name == name:
            testing.join(thread, f"the thread {name!r} to end")


# --------------------------------------------------------------------- names


@pytest.mark.spec("THREAD-1")
def test_main_thread_is_called_mainthread(threads):
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("this test runner runs tests outside the main thread")
    name = threads.current_name()
    assert name == "MainThread", f"current_name() in the main thread returned {name!r}, expected 'MainThread'"


@pytest.mark.spec("THREAD-2")
def test_current_name_in_a_named_thread(threads):
    threads.current_name()  # a stub fails here, at once
    name = in_thread(threads.current_name, "LoopThread", "current_name() to return in LoopThread")
    assert name == "LoopThread", (
        f"current_name() called in the thread 'LoopThread' returned {name!r}: "
        "it should name the thread that calls it (threading.current_thread())"
    )


@pytest.mark.spec("THREAD-2")
def test_start_thread_gives_the_name(threads):
    seen: queue.Queue = queue.Queue()
    thread = threads.start_thread(
        lambda: seen.put((threading.current_thread().name, threading.get_ident())), "LoopThread"
    )
    assert isinstance(thread, threading.Thread), f"start_thread returned {thread!r}, expected the Thread"
    name, ident = testing.get(seen, "the target to run (was the thread started?)")
    testing.join(thread, "the thread to end")
    assert ident != threading.get_ident(), "the target ran in the caller's thread, not in a new one"
    assert name == "LoopThread" and thread.name == "LoopThread", (
        f"inside the target current_thread().name was {name!r} (thread.name {thread.name!r}), "
        "expected 'LoopThread'"
    )


@pytest.mark.spec("THREAD-3")
def test_unnamed_thread_is_thread_n_target(threads):
    seen: queue.Queue = queue.Queue()

    def loop() -> None:
        seen.put(threading.current_thread().name)

    first = threads.start_thread(loop)
    first_seen = testing.get(seen, "the first target to run")
    second = threads.start_thread(loop)
    second_seen = testing.get(seen, "the second target to run")
    testing.join(first, "the first thread to end")
    testing.join(second, "the second thread to end")
    numbers = []
    for name in (first_seen, second_seen):
        m = re.fullmatch(r"Thread-(\d+) \(loop\)", name)
        assert m, (
            f"an unnamed thread running loop() is called {name!r}, expected 'Thread-N (loop)' (Python 3.10+)"
        )
        numbers.append(int(m.group(1)))
    assert numbers[0] < numbers[1], f"two unnamed threads got numbers {numbers}: N should grow"


# ---------------------------------------------------------------------- join


@pytest.mark.spec("THREAD-4")
def test_run_thread_runs_target_in_a_new_thread_and_returns_after_it(threads):
    done = threading.Event()
    where: list[int] = []

    def target() -> None:
        where.append(threading.get_ident())
        done.set()

    threads.run_thread(target, "Worker")
    assert where, "run_thread returned without running the target"
    assert where[0] != threading.get_ident(), "the target ran in the caller's thread: start a Thread"
    assert done.is_set(), "run_thread returned before the target ended: join() the thread"


@pytest.mark.spec("THREAD-4")
def test_run_thread_blocks_in_join_while_the_target_runs(threads):
    events: queue.Queue = queue.Queue()
    gate = threading.Event()

    def target() -> None:
        events.put("started")
        gate.wait(testing.WAIT)
        events.put("target ended")

    def runner() -> None:
        try:
            threads.run_thread(target, "Held")
            events.put("run_thread returned")
        except BaseException as exc:
            events.put(exc)

    caller = threading.Thread(target=runner, name="Caller", daemon=True)
    caller.start()
    try:
        first = testing.get(events, "the target to start")
        if isinstance(first, BaseException):
            raise first
        assert first == "started", f"the first event was {first!r}"
        parked = testing.blocked_in(caller, "join")
        assert parked, "run_thread returned while its thread was still running: it did not join() it"
    finally:
        gate.set()
        testing.join(caller, "run_thread to return once the target ended")
    order = [testing.get(events, "the rest of the events") for _ in range(2)]
    assert order == ["target ended", "run_thread returned"], f"events after the gate opened: {order}"


# ---------------------------------------------------------------- exceptions


@pytest.mark.spec("THREAD-5")
def test_exception_goes_to_excepthook_not_to_the_starter(threads):
    seen: list[tuple[Any, str | None, str]] = []

    def hook(args: Any) -> None:
        seen.append(
            (args.exc_type, args.thread.name if args.thread else None, threading.current_thread().name)
        )

    def boom() -> None:
        raise ValueError("boom in the thread")

    previous = threading.excepthook
    threading.excepthook = hook
    try:
        threads.run_thread(boom, "Boom")
    except Exception as exc:
        testing.fail(
            f"run_thread raised {type(exc).__name__}: {exc} — an exception in a thread must not reach "
            "the code that started it (was the target called in the caller's thread?)"
        )
    finally:
        try:
            join_threads_named("Boom")  # after this the hook has been called, or never will be
        finally:
            threading.excepthook = previous
    assert seen, (
        "threading.excepthook was never called: the thread's exception was caught and dropped; "
        "let it escape the target"
    )
    assert seen == [(ValueError, "Boom", "Boom")], (
        f"threading.excepthook saw (type, thread, called in) {seen}, "
        "expected one ValueError from 'Boom', in 'Boom'"
    )


# ------------------------------------------------------------------- daemons


def run_probe(threads, mode: str, what: str) -> Any:
    module = threads.module.__name__
    return testing.run_program(
        [sys.executable, "-m", "kata.probes.threads", module, mode],
        what,
        env=learner.child_env(module.split(".")[0]),
    )


@pytest.mark.spec("THREAD-6")
def test_start_thread_can_make_a_daemon(threads):
    gate = threading.Event()
    thread = threads.start_thread(lambda: gate.wait(testing.WAIT), "Background", daemon=True)
    try:
        assert thread.is_alive(), "start_thread returned a thread that is not running: call start()"
        assert thread.daemon is True, "start_thread(..., daemon=True) returned a thread whose daemon is False"
    finally:
        gate.set()
        testing.join(thread, "the thread to end once its gate opened")


@pytest.mark.spec("THREAD-6")
def test_daemon_thread_does_not_keep_the_program_alive(threads):
    run = run_probe(
        threads,
        "daemon",
        "the program to exit while its daemon thread still waits (only a non-daemon thread keeps it alive)",
    )
    assert run.returncode == 0, f"the program exited with {run.returncode}:\n{testing.cut(run.stderr)}"
    assert run.stdout.splitlines() == ["thread MainThread ended."], f"the program printed:\n{run.stdout}"


@pytest.mark.spec("THREAD-7")
def test_threads_are_not_daemons_unless_asked(threads):
    for kwargs in ({}, {"daemon": False}):
        gate = threading.Event()
        thread = threads.start_thread(lambda gate=gate: gate.wait(testing.WAIT), "Worker", **kwargs)
        try:
            assert thread.daemon is False, (
                f"start_thread(target, 'Worker'{', daemon=False' if kwargs else ''}) made a daemon thread: "
                "threads are non-daemon unless daemon=True is asked for"
            )
        finally:
            gate.set()
            testing.join(thread, "the thread to end once its gate opened")


@pytest.mark.spec("THREAD-7")
def test_non_daemon_thread_keeps_the_program_alive(threads):
    run = run_probe(threads, "non-daemon", "the program to exit once its non-daemon thread ended")
    assert run.returncode == 0, f"the program exited with {run.returncode}:\n{testing.cut(run.stderr)}"
    expected = ["thread MainThread ended.", "thread LoopThread ran on after MainThread ended."]
    assert run.stdout.splitlines() == expected, (
        f"expected {expected}: the program waits for its non-daemon thread; it printed:\n{run.stdout}"
    )


# ---------------------------------------------------------------------- demo


@pytest.mark.spec("THREAD-8")
def test_loop_names_its_thread(threads, capsys):
    threads.loop(0, 0.0)  # a stub fails here, at once
    capsys.readouterr()
    in_thread(lambda: threads.loop(2, 0.0), "LoopThread", "loop(2, 0) to return")
    lines = capsys.readouterr().out.splitlines()
    expected = [
        "thread LoopThread is running...",
        "thread LoopThread >>> 1",
        "thread LoopThread >>> 2",
        "thread LoopThread ended.",
    ]
    assert lines == expected, f"loop(2, 0) in LoopThread printed {lines}, expected {expected}"


@pytest.mark.spec("THREAD-8")
def test_main_prints_the_transcript_in_order(threads, capsys):
    threads.main(5, 0.0)
    lines = capsys.readouterr().out.splitlines()
    assert lines == NOTE_TRANSCRIPT, "main(5, 0) printed:\n" + "\n".join(lines)


@pytest.mark.spec("THREAD-8")
def test_demo_prints_the_transcript(demo):
    run = demo("threads", "--delay", "0.01")
    assert run.returncode == 0, f"the demo exited with {run.returncode}:\n{testing.cut(run.stderr)}"
    assert run.stdout.splitlines() == NOTE_TRANSCRIPT, "the demo printed:\n" + run.stdout
