"""Tests of spec/10-thread_local.md: threading.local, one value per thread.

No start method here: threads only. Learner functions run in daemon threads
the test names (Thread-A, Thread-B), joined with one bound; where the order
matters the test forces it with a barrier or events, never with sleeps. A
thread that fails aborts the barrier and sets the events, so the other ends at
once instead of waiting out its bound; a thread still running at the bound is
reported with the learner function it is stuck in. Pool items use a one-worker
``ThreadPoolExecutor``: every task runs in the same thread.

Calls in the test's own thread go through ``impl``'s guard (``tl.guarded``).
Calls in helper threads (``tl.<function>``) only turn a stub's
``NotImplementedError`` into the kata's failure: a guarded call that never
returns would leave the guard's ``os._exit`` patch in place for the rest of
the run, and the plugin's exit path needs the real one.

The main thread lives through the whole run: the ``tl`` fixture removes any
student a test left bound there, and any entry left in ``global_dict``.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import os
import queue
import sys
import threading
import time
import types
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import pytest

from kata import learner, testing

NOTE_TRANSCRIPT = ["Hello, Alice (in Thread-A)", "Hello, Bob (in Thread-B)"]


class Student:
    """A value a weakref can follow (a ``str`` cannot be weakly referenced)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"Student({self.name!r})"


class ThreadLocalTopic:
    """The module under test: ``tl.f`` for calls in helper threads, ``tl.guarded.f`` in the test's thread."""

    def __init__(self, guarded: learner.Guarded) -> None:
        self.guarded = guarded
        self.module = guarded.module

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.module, name)
        if not isinstance(value, types.FunctionType):
            return value

        @functools.wraps(value)
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return value(*args, **kwargs)
            except NotImplementedError as exc:
                testing.fail(f"not implemented yet: NotImplementedError: {exc}")

        return call


@pytest.fixture
def tl(impl) -> Iterator[ThreadLocalTopic]:
    topic = ThreadLocalTopic(impl("thread_local"))
    yield topic
    # Leave the main thread as the test found it: no student bound, no dict entries.
    local = getattr(topic.module, "local_school", None)
    if isinstance(local, threading.local):
        local.__dict__.pop("student", None)
    entries = getattr(topic.module, "global_dict", None)
    if isinstance(entries, dict):
        entries.clear()


def stuck_in(thread: threading.Thread) -> str:
    """Where a running thread is: the innermost frame outside the standard library and this file."""
    frame = sys._current_frames().get(thread.ident or -1)
    innermost = frame
    stdlib = os.path.dirname(threading.__file__)
    while frame is not None:
        path = frame.f_code.co_filename
        if not path.startswith(stdlib) and path != __file__:
            break
        frame = frame.f_back
    frame = frame or innermost
    if frame is None:
        return f"{thread.name} (ended)"
    where = f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno}"
    return f"{thread.name} still running, in {frame.f_code.co_name}() ({where})"


def run_threads(
    targets: dict[str, Callable[[], Any]], what: str, on_error: Callable[[], object] = lambda: None
) -> dict[str, Any]:
    """Run each target in a daemon thread of that name; return their results by name.

    A target that raises calls ``on_error()`` (abort the barrier, set the
    events) so that the others stop waiting for it. All threads share one
    bound (``testing.WAIT``); the first real error (not a broken barrier) is
    raised here.
    """
    results: dict[str, Any] = {}
    errors: dict[str, BaseException] = {}
    ended: queue.Queue[str] = queue.Queue()

    def run(name: str, target: Callable[[], Any]) -> None:
        try:
            results[name] = target()
        except BaseException as exc:  # a stub's failure too: re-raised in the test below
            errors[name] = exc
            on_error()
        finally:
            ended.put(name)

    threads = {
        name: threading.Thread(target=run, args=(name, target), name=name, daemon=True)
        for name, target in targets.items()
    }
    for thread in threads.values():
        thread.start()
    running = set(threads)
    deadline = time.monotonic() + testing.WAIT
    try:
        while running and not errors:
            try:
                running.discard(ended.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                break
    finally:
        on_error()  # free any thread still waiting on the test's barrier or events
    # Join them all: a thread's locals are released after its target returns, before join() does.
    for name, thread in threads.items():
        left = max(0.0, deadline - time.monotonic())
        thread.join(min(1.0, left) if name in running else left)  # a freed thread ends at once
        if thread.is_alive():
            running.add(name)
        else:
            running.discard(name)
    real = [exc for exc in errors.values() if not isinstance(exc, threading.BrokenBarrierError)]
    if real:
        raise real[0]
    if running:
        testing.fail(
            f"timed out after {testing.WAIT:g} s waiting for {what}: "
            + "; ".join(stuck_in(threads[name]) for name in sorted(running))
        )
    if errors:
        testing.fail(f"{', '.join(errors)} gave up waiting at the barrier ({what})")
    return results


def attempt(func: Callable[[], Any]) -> Any:
    """What ``func()`` returned, or the exception it raised; a kata failure (a stub's) goes on up."""
    try:
        return func()
    except Exception as exc:
        return exc


def describe(outcome: Any) -> str:
    if isinstance(outcome, BaseException):
        return f"raised {type(outcome).__name__}: {outcome}"
    return f"returned {outcome!r}"


# ------------------------------------------------------------------ TLOCAL-1


@pytest.mark.spec("TLOCAL-1")
def test_alice_and_bob_each_see_their_own(tl):
    both_bound = threading.Barrier(2, timeout=testing.WAIT)
    hooked: set[str] = set()

    def after_bind() -> None:
        name = threading.current_thread().name
        hooked.add(name)
        seen = attempt(tl.current_student)
        expected = {"Thread-A": "Alice", "Thread-B": "Bob"}[name]
        if seen != expected:
            testing.fail(
                f"in {name}, when after_bind() was called, current_student() {describe(seen)}; expected "
                f"{expected!r}: bind the student before calling after_bind(), on threading.local (a global "
                "is overwritten by the other thread)"
            )
        both_bound.wait()

    def in_thread(student: str) -> Callable[[], Any]:
        def run() -> Any:
            try:
                return tl.process_thread(student, after_bind)
            finally:
                if threading.current_thread().name not in hooked:
                    both_bound.abort()  # this thread will never reach the barrier: free its partner

        return run

    lines = run_threads(
        {"Thread-A": in_thread("Alice"), "Thread-B": in_thread("Bob")},
        "process_thread with a two-party barrier as after_bind",
        both_bound.abort,
    )
    missing = {"Thread-A", "Thread-B"} - hooked
    assert not missing, (
        f"process_thread never called after_bind() in {', '.join(sorted(missing))}: "
        "call it between binding the student and reading it back"
    )
    got = [lines["Thread-A"], lines["Thread-B"]]
    assert got == NOTE_TRANSCRIPT, (
        f"with both students bound before either was read, the threads returned {got}, "
        f"expected {NOTE_TRANSCRIPT}: each thread must see only its own student (threading.local), "
        "not the last one written"
    )


@pytest.mark.spec("TLOCAL-1")
def test_bind_and_read_in_two_threads(tl):
    both_bound = threading.Barrier(2, timeout=testing.WAIT)

    def bind_wait_read(student: Student) -> Callable[[], Any]:
        def run() -> Any:
            tl.bind_student(student)
            both_bound.wait()
            return tl.current_student(), tl.greeting()

        return run

    alice, bob = Student("Alice"), Student("Bob")
    seen = run_threads(
        {"Thread-A": bind_wait_read(alice), "Thread-B": bind_wait_read(bob)},
        "bind_student, a barrier, then current_student",
        both_bound.abort,
    )
    for name, student in (("Thread-A", alice), ("Thread-B", bob)):
        got, line = seen[name]
        assert got is student, (
            f"in {name}, current_student() returned {got!r} after bind_student({student!r}) "
            "while the other thread had bound its own: expected the thread's own student"
        )
        assert line == f"Hello, {student} (in {name})", (
            f"greeting() in {name} returned {line!r}, expected 'Hello, {student} (in {name})'"
        )


# ------------------------------------------------------------------ TLOCAL-2


@pytest.mark.spec("TLOCAL-2")
def test_never_bound_here_raises_attribute_error(tl):
    a_bound, b_read = threading.Event(), threading.Event()

    def release() -> None:
        a_bound.set()
        b_read.set()

    def thread_a() -> Any:
        tl.bind_student("Alice")
        a_bound.set()
        testing.wait_event(b_read, "Thread-B to read (Thread-A stays alive with its student bound)")
        return tl.current_student()

    def thread_b() -> Any:
        testing.wait_event(a_bound, "Thread-A to bind its student")
        try:
            return attempt(tl.current_student)
        finally:
            b_read.set()

    seen = run_threads(
        {"Thread-A": thread_a, "Thread-B": thread_b}, "one thread binds, the other reads", release
    )
    outcome = seen["Thread-B"]
    assert isinstance(outcome, AttributeError), (
        f"current_student() in a thread that never bound a student {describe(outcome)} "
        "while Thread-A had 'Alice' bound; expected AttributeError (\"'_thread._local' object has no "
        "attribute 'student'\"): keep students on threading.local, not in a dict or a global"
    )
    assert "student" in str(outcome), f"the AttributeError does not name 'student': {outcome}"
    assert seen["Thread-A"] == "Alice", (
        f"Thread-A's current_student() {describe(seen['Thread-A'])} after Thread-B read, expected 'Alice'"
    )


# ------------------------------------------------------------------ TLOCAL-3


@pytest.mark.spec("TLOCAL-3")
def test_main_threads_student_is_not_seen_elsewhere(tl):
    tl.guarded.bind_student("Main")  # in the thread that runs the test; a stub fails here, at once

    def other() -> Any:
        before = attempt(tl.current_student)
        tl.bind_student("Alice")
        return before, tl.current_student()

    before, after = run_threads({"Thread-A": other}, "a new thread to read, bind and read")["Thread-A"]
    here = threading.current_thread().name
    assert isinstance(before, Exception), (
        f"in a new thread, current_student() {describe(before)} after {here} bound 'Main'; expected "
        f"no student there (AttributeError, TLOCAL-2): {here}'s student is {here}'s alone"
    )
    assert after == "Alice", f"Thread-A bound 'Alice' and then read {after!r}"
    mine = tl.guarded.current_student()
    assert mine == "Main", (
        f"after Thread-A bound 'Alice', current_student() in {here} returned {mine!r}, expected 'Main'"
    )


# ------------------------------------------------------------------ TLOCAL-4


def bind_new_student(bind: Callable[[object], None], refs: list[weakref.ref]) -> Callable[[], None]:
    """A thread target: make a Student, keep only a weakref to it, bind it with ``bind``."""

    def run() -> None:
        student = Student("Alice")
        refs.append(weakref.ref(student))
        bind(student)

    return run


@pytest.mark.spec("TLOCAL-4")
def test_value_is_freed_when_its_thread_ends(tl):
    refs: list[weakref.ref] = []
    run_threads({"Thread-A": bind_new_student(tl.bind_student, refs)}, "bind_student of a new Student")
    # run_threads joined Thread-A: CPython clears a thread's state before join() returns.
    gc.collect()
    alive = refs[0]()
    assert alive is None, (
        f"{alive!r}, bound with bind_student in Thread-A, is still alive after Thread-A ended, was joined "
        "and gc.collect() ran: expected it freed with its thread; something besides threading.local "
        "holds it (a dict keyed by thread? a list? a global?)"
    )


# ------------------------------------------------------------------ TLOCAL-5


@pytest.mark.spec("TLOCAL-5")
def test_global_dict_keeps_the_value_until_forgotten(tl):
    refs: list[weakref.ref] = []
    threads: list[threading.Thread] = []
    bind = bind_new_student(tl.dict_bind_student, refs)

    def thread_a() -> None:
        threads.append(threading.current_thread())
        bind()

    run_threads({"Thread-A": thread_a}, "dict_bind_student of a new Student")
    thread = threads[0]
    gc.collect()
    entries = tl.module.global_dict
    kept = refs[0]()
    assert kept is not None, (
        "the Student bound with dict_bind_student was freed when its thread ended: expected the note's "
        "global_dict[threading.current_thread()] to keep it alive (that is the note's leak)"
    )
    assert thread in entries and entries[thread] is kept, (
        f"global_dict has no entry for the ended Thread-A holding the Student (keys: {list(entries)}): "
        "expected global_dict[threading.current_thread()] = student"
    )
    tl.dict_forget(thread)
    del kept
    gc.collect()
    assert thread not in entries, "dict_forget(thread) left the thread's entry in global_dict"
    assert refs[0]() is None, "after dict_forget(thread) the Student is still alive: remove the entry"


# ------------------------------------------------------------------ TLOCAL-6


@pytest.mark.spec("TLOCAL-6")
def test_subclass_init_runs_once_per_thread(tl):
    calls: list[str] = []
    here = threading.current_thread().name
    try:  # a stub's NotImplementedError fails here, at once
        school = tl.SchoolLocal("nobody", on_init=lambda: calls.append(threading.current_thread().name))
    except NotImplementedError as exc:
        testing.fail(f"not implemented yet: NotImplementedError: {exc}")
    assert calls == [here], (
        f"creating SchoolLocal('nobody', on_init) in {here} called on_init {len(calls)} time(s) "
        f"{calls}: expected once, in {here}: __init__ must call on_init()"
    )

    def thread_a() -> Any:
        first, second = school.student, school.student
        school.student = "Alice"
        return first, second, school.student

    def thread_b() -> Any:
        return school.student

    a = run_threads({"Thread-A": thread_a}, "Thread-A to use the SchoolLocal")["Thread-A"]
    b = run_threads({"Thread-B": thread_b}, "Thread-B to use the SchoolLocal")["Thread-B"]
    assert a == ("nobody", "nobody", "Alice"), (
        f"in Thread-A, student read {a[0]!r}, {a[1]!r}, then {a[2]!r} after setting 'Alice'; "
        "expected 'nobody', 'nobody', 'Alice': __init__ sets self.student = default"
    )
    assert b == "nobody", f"Thread-B, after Thread-A set 'Alice', read {b!r}, expected its own 'nobody'"
    assert school.student == "nobody", f"{here} reads {school.student!r}, expected its own 'nobody'"
    assert calls == [here, "Thread-A", "Thread-B"], (
        f"on_init ran in {calls}; expected once in each thread that used the object: "
        f"{[here, 'Thread-A', 'Thread-B']} (Python calls __init__ per thread; call on_init() once in it)"
    )


# ------------------------------------------------------------------ pools


@contextlib.contextmanager
def one_worker_pool() -> Iterator[ThreadPoolExecutor]:
    """A pool with a single worker thread, named ``Pool_0``; shut down (bounded) after."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="Pool")
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)  # a stuck task keeps its worker: the test failed
        raise
    workers = list(getattr(pool, "_threads", ()))
    pool.shutdown(wait=False)
    for worker in workers:
        testing.join(worker, "the pool's worker thread to end after shutdown()")


def outcome(pool: ThreadPoolExecutor, future: Future, what: str) -> Any:
    """The task's result, or the exception it raised as a value; a kata failure goes on up."""
    try:
        exc = future.exception(timeout=testing.WAIT)
    except FutureTimeout:
        workers = "; ".join(stuck_in(worker) for worker in getattr(pool, "_threads", ()))
        testing.fail(f"timed out after {testing.WAIT:g} s waiting for {what}: {workers}")
    if exc is not None and not isinstance(exc, Exception):
        raise exc  # a stub's failure (pytest's Failed) or another BaseException
    return exc if exc is not None else future.result()


def in_worker(func: Callable[[], Any]) -> Callable[[], tuple[str, Any]]:
    """A pool task: the worker thread's name and what ``func()`` returned or raised."""

    def task() -> tuple[str, Any]:
        return threading.current_thread().name, attempt(func)

    return task


@pytest.mark.spec("TLOCAL-7")
def test_pool_thread_keeps_its_value_between_tasks(tl):
    with one_worker_pool() as pool:
        first = outcome(pool, pool.submit(in_worker(lambda: tl.bind_student("Alice"))), "the first task")
        second = outcome(pool, pool.submit(in_worker(tl.current_student)), "the second task")
    assert first[0] == second[0] == "Pool_0", f"the tasks ran in {first[0]!r} and {second[0]!r}"
    assert second[1] == "Alice", (
        f"the second task in the same worker thread: current_student() {describe(second[1])}; "
        "expected 'Alice', bound by the first task: a thread-local lives as long as its thread, "
        "not as long as a task"
    )


@pytest.mark.spec("TLOCAL-8")
def test_pool_task_leaves_no_student_behind(tl):
    with one_worker_pool() as pool:
        line = outcome(pool, pool.submit(tl.pool_task, "Alice"), "pool_task('Alice')")
        after = outcome(pool, pool.submit(in_worker(tl.current_student)), "the next task")
    assert line == "Hello, Alice (in Pool_0)", (
        f"pool_task('Alice') {describe(line)}, expected 'Hello, Alice (in Pool_0)' (greeting())"
    )
    assert isinstance(after[1], Exception), (
        f"the next task in the same worker: current_student() {describe(after[1])}; expected no student "
        "(AttributeError): pool_task must unbind its student (forget_student) in finally"
    )


@pytest.mark.spec("TLOCAL-8")
def test_pool_task_unbinds_even_when_the_work_raises(tl):
    def work() -> Any:
        seen = tl.current_student()
        raise ValueError(f"work failed while {seen} was bound")

    with one_worker_pool() as pool:
        failed = outcome(pool, pool.submit(tl.pool_task, "Bob", work), "pool_task('Bob', work)")
        after = outcome(pool, pool.submit(in_worker(tl.current_student)), "the next task")
    assert isinstance(failed, ValueError) and "Bob" in str(failed), (
        f"pool_task('Bob', work) with a work() that raises ValueError {describe(failed)}: "
        "expected the ValueError from work(), raised while 'Bob' was bound"
    )
    assert isinstance(after[1], Exception), (
        f"after pool_task's work() raised, the next task in that worker: current_student() "
        f"{describe(after[1])}; expected no student (AttributeError): unbind in finally, so that it "
        "runs on an exception too"
    )


@pytest.mark.spec("TLOCAL-8")
def test_forget_student_unbinds_in_this_thread_only(tl):
    both_bound, a_forgot = threading.Barrier(2, timeout=testing.WAIT), threading.Event()

    def release() -> None:
        both_bound.abort()
        a_forgot.set()

    def thread_a() -> Any:
        tl.bind_student("Alice")
        both_bound.wait()
        tl.forget_student()
        a_forgot.set()
        return attempt(tl.current_student)

    def thread_b() -> Any:
        tl.bind_student("Bob")
        both_bound.wait()
        testing.wait_event(a_forgot, "Thread-A to call forget_student()")
        return attempt(tl.current_student)

    seen = run_threads({"Thread-A": thread_a, "Thread-B": thread_b}, "bind, forget in one thread", release)
    assert isinstance(seen["Thread-A"], Exception), (
        f"after forget_student(), current_student() in Thread-A {describe(seen['Thread-A'])}; "
        "expected no student (AttributeError): del local_school.student"
    )
    assert seen["Thread-B"] == "Bob", (
        f"after Thread-A's forget_student(), current_student() in Thread-B {describe(seen['Thread-B'])}, "
        "expected 'Bob': forgetting is per thread too"
    )


# ------------------------------------------------------------------ TLOCAL-9


@pytest.mark.spec("TLOCAL-9")
def test_demo_prints_the_transcript(demo):
    run = demo("thread_local")
    assert run.returncode == 0, f"the demo exited with {run.returncode}:\n{testing.cut(run.stderr)}"
    assert run.stdout.splitlines() == NOTE_TRANSCRIPT, "the demo printed:\n" + run.stdout


@pytest.mark.spec("TLOCAL-9")
@pytest.mark.parametrize(
    ("held_student", "held", "other"), [("Alice", "Thread-A", "Thread-B"), ("Bob", "Thread-B", "Thread-A")]
)
def test_main_joins_both_threads_before_it_prints(tl, monkeypatch, capsys, held_student, held, other):
    """Hold one thread after its work: main() must wait for it in join(), not print without its line."""
    real, gate = tl.module.process_thread, threading.Event()

    def process_thread(name: str, after_bind: Callable[[], object] = lambda: None) -> str:
        line = real(name, after_bind)
        if name == held_student:
            testing.wait_event(gate, f"the test to let {held} end")
        return line

    def other_ended_or_main_returned() -> bool:
        return not call.thread.is_alive() or not any(t.name == other for t in threading.enumerate())

    monkeypatch.setattr(tl.module, "process_thread", process_thread)
    call = testing.Background(tl.main)
    try:
        testing.until(other_ended_or_main_returned, f"{other} to end while {held} is held")
        call.parked_in("join", "threading.py", f"main() to wait in join() for the held {held}")
    finally:
        gate.set()
    call.result(f"main() to print once {held} ended")
    assert capsys.readouterr().out.splitlines() == NOTE_TRANSCRIPT
