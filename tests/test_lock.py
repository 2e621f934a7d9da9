"""Tests of spec/08-lock.md: the lost update, forced; the lock; deadlock; RLock; processes.

No test hopes for a race. ``change_it`` calls a hook between each read of
``balance`` and the write that uses it; the test's hooks park a thread there
until the test lets it go, so every run follows the same schedule. The locks
the code under test takes are the test's ``SpyLock``s: they tell the test
which thread is waiting in ``acquire`` (proof that it is blocked, since the
holder is parked), and a failing test frees them so that no thread is left
deadlocked.
"""

from __future__ import annotations

import functools
import multiprocessing
import threading
import time
from typing import Any

import pytest

from kata import reaper, testing
from kata.probes import lock as lock_probes

#: acquire(timeout=...) given to the thread that must detect the deadlock (s).
GIVE_UP = 0.05


class SpyLock:
    """A ``threading.Lock`` (or ``RLock``) that shows who waits in ``acquire``; ``free()`` ends every wait."""

    def __init__(self, inner: Any = None) -> None:
        self._inner = inner if inner is not None else threading.Lock()
        self._waiting: set[int] = set()
        self._freed = False

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if self._freed:
            return True
        if not blocking or timeout == 0:
            return self._inner.acquire(False)
        deadline = None if timeout < 0 else time.monotonic() + timeout
        me = threading.get_ident()
        self._waiting.add(me)
        try:
            while not self._freed:
                step = 0.05 if deadline is None else min(0.05, deadline - time.monotonic())
                if step <= 0:
                    return False
                if self._inner.acquire(True, step):
                    return True
            return True
        finally:
            self._waiting.discard(me)

    def release(self) -> None:
        if self._freed:
            return
        self._inner.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def locked(self) -> bool:
        return self._inner.locked()

    def waits(self, thread: threading.Thread) -> bool:
        """Is ``thread`` inside ``acquire`` now, not holding the lock yet?"""
        return thread.ident in self._waiting

    def free(self) -> None:
        """Let every waiter through and make the lock a no-op: cleanup after a deadlock."""
        self._freed = True


def _explained(exc: BaseException) -> BaseException:
    """The note's ``threading.lock()`` raises AttributeError: turn it into a failure that says why."""
    if isinstance(exc, AttributeError) and "'threading' has no attribute 'lock'" in str(exc):
        return pytest.fail.Exception(
            f"{testing.spec_prefix()}: {type(exc).__name__}: {exc}. The note's threading.lock() does not "
            "exist: the class is threading.Lock, so the module needs `lock = threading.Lock()`",
            pytrace=False,
        )
    return exc


def _outcome(call: testing.Background, what: str) -> Any:
    """``call.result(what)``, bounded; the note's ``threading.lock()`` explained if that is what it raised."""
    __tracebackhide__ = True
    try:
        return call.result(what)
    except AttributeError as exc:
        raise _explained(exc) from None


class Pause:
    """A hook that parks its thread on its ``at``-th call until ``go`` is set; counts calls."""

    def __init__(self, at: int) -> None:
        self.at, self.calls = at, 0
        self.parked, self.go = threading.Event(), threading.Event()

    def __call__(self) -> None:
        self.calls += 1
        if self.calls == self.at:
            self.parked.set()
            self.go.wait(testing.WAIT)


def _parked_or_done(call: testing.Background, pause: Pause, what: str, *spies: SpyLock) -> str:
    """Wait until the call is parked in its hook, waits on one of ``spies``, or has ended.

    If it ended by raising, the exception is raised in the test.
    """
    __tracebackhide__ = True

    def state() -> str | None:
        if pause.parked.is_set():
            return "parked"
        if any(spy.waits(call.thread) for spy in spies):
            return "waiting"
        return None if call.thread.is_alive() else "ended"

    seen = testing.until(state, what)
    if seen == "ended" and call.error is not None:
        raise _explained(call.error)
    return seen


@pytest.fixture
def lock(impl):
    return impl("lock")


@pytest.fixture
def fresh(lock, monkeypatch):
    """The module with ``balance = 0`` and its ``lock`` replaced by a SpyLock (restored after)."""
    spy = SpyLock()
    monkeypatch.setattr(lock.module, "balance", 0)
    monkeypatch.setattr(lock.module, "lock", spy)
    yield lock, spy
    spy.free()


def _release_all(*pauses: Pause) -> None:
    for pause in pauses:
        pause.go.set()


# ---------------------------------------------------------------- LOCK-1


@pytest.mark.spec("LOCK-1")
def test_change_it_adds_then_subtracts(fresh):
    lock, _ = fresh
    calls = []
    lock.change_it(5, lambda: calls.append(lock.module.balance))
    assert lock.module.balance == 0, f"balance is {lock.module.balance} after change_it(5), expected 0"
    assert calls == [0, 5], (
        f"between_read_and_write saw balance {calls}, expected [0, 5]: call it once after reading "
        "balance for `+ n` and once after reading it for `- n`, each time before the write"
    )


@pytest.mark.spec("LOCK-1")
def test_a_forced_interleaving_loses_an_update(fresh):
    lock, _ = fresh
    lock.change_it(0)  # a stub fails here, at once
    a_hook, b_hook = Pause(at=2), Pause(at=2)
    try:
        a = testing.Background(lock.change_it, 5, a_hook)
        assert _parked_or_done(a, a_hook, "thread A to read balance for `- 5`") == "parked", (
            "thread A ended without calling between_read_and_write a second time"
        )
        b = testing.Background(lock.change_it, 8, b_hook)
        seen = _parked_or_done(b, b_hook, "thread B to read balance for `- 8` while A waits to write")
        assert seen == "parked", "thread B ended without calling between_read_and_write a second time"
        a_hook.go.set()
        _outcome(a, "thread A to finish")
        b_hook.go.set()
        _outcome(b, "thread B to finish")
    finally:
        _release_all(a_hook, b_hook)
    # A: read 0, wrote 5, read 5 and waited; B: read 5, wrote 13, read 13 and waited;
    # A wrote 5 - 5 = 0; B wrote 13 - 8 = 5 over it: A's subtraction is lost.
    assert lock.module.balance == 5, (
        f"balance is {lock.module.balance} after the forced schedule, expected 5 (A's `- 5` lost): "
        "change_it must write the value computed from its own earlier read, with no lock"
    )


# ---------------------------------------------------------------- LOCK-2


@pytest.mark.spec("LOCK-2")
def test_the_lock_is_a_threading_Lock(lock):
    assert not hasattr(threading, "lock"), "threading.lock exists on this Python?"
    real = type(threading.Lock())
    assert isinstance(lock.lock, real), (
        f"the module's `lock` is {lock.lock!r}, expected threading.Lock() (the note's threading.lock() "
        "does not exist; an RLock is not needed here)"
    )


@pytest.mark.spec("LOCK-2")
def test_with_the_lock_the_same_schedule_loses_nothing(fresh):
    lock, spy = fresh
    try:
        lock.change_it_safely(0)  # a stub fails here, at once
    except AttributeError as exc:
        raise _explained(exc) from None
    a_hook, b_hook = Pause(at=2), Pause(at=2)
    b_hook.go.set()  # B, once in, runs through
    try:
        a = testing.Background(lock.change_it_safely, 5, a_hook)
        seen = _parked_or_done(a, a_hook, "thread A to read balance for `- 5`", spy)
        assert seen == "parked", f"thread A {seen} before calling between_read_and_write a second time"
        assert spy.locked(), (
            "thread A is between a read and a write of balance, but the module's lock is free"
        )
        b = testing.Background(lock.change_it_safely, 8, b_hook)
        seen = _parked_or_done(b, b_hook, "thread B to wait for the lock", spy)
        assert seen == "waiting", (
            "thread B read balance while thread A was between its read and its write: "
            "change_it_safely must hold the module's `lock` around change_it (`with lock:`)"
        )
        a_hook.go.set()
        _outcome(a, "thread A to finish and release the lock")
        _outcome(b, "thread B to get the lock and finish (was the lock released?)")
    finally:
        _release_all(a_hook, b_hook)
        spy.free()
    assert lock.module.balance == 0, f"balance is {lock.module.balance}, expected 0: no update lost"
    assert b_hook.calls == 2, f"thread B called the hook {b_hook.calls} times, expected 2"


# ---------------------------------------------------------------- LOCK-3


class Boom(Exception):
    pass


def _boom() -> None:
    raise Boom("raised between the read and the write")


@pytest.mark.spec("LOCK-3")
def test_the_lock_is_released_when_the_critical_section_raises(fresh):
    lock, spy = fresh
    runner = testing.Background(lock.change_it_safely, 5, _boom)
    try:
        testing.join(runner.thread, "change_it_safely to return or raise")
    finally:
        spy.free()
    if runner.error is not None and not isinstance(runner.error, Boom):
        raise _explained(runner.error)
    assert isinstance(runner.error, Boom), (
        "change_it_safely returned although the critical section raised: let the exception through"
    )
    assert not spy.locked(), (
        "the module's `lock` is still held after the critical section raised: "
        "use `with lock:` or release it in `finally`"
    )


# ---------------------------------------------------------------- LOCK-4 / LOCK-5


@pytest.mark.spec("LOCK-4")
def test_opposite_orders_deadlock_and_a_timeout_detects_it(lock):
    a, b = SpyLock(), SpyLock()
    both_hold_one = threading.Barrier(2, timeout=testing.WAIT)
    try:
        one = testing.Background(lock.take_both, a, b, both_hold_one.wait, GIVE_UP)
        two = testing.Background(lock.take_both, b, a, both_hold_one.wait, testing.WAIT)
        got_one = _outcome(
            one,
            f"take_both(a, b, timeout={GIVE_UP}) to give up: the threads deadlocked "
            "(each holds one lock and waits forever for the other); use second.acquire(timeout=timeout)",
        )
        got_two = _outcome(two, "take_both(b, a) to get a once the other thread gave it up")
    finally:
        both_hold_one.abort()
        a.free()
        b.free()
    assert got_one is False, (
        f"take_both(a, b) returned {got_one!r} while the other thread held b and waited for a: "
        "expected False (it could not get b within the timeout)"
    )
    assert got_two is True, f"take_both(b, a) returned {got_two!r}, expected True once a was released"
    assert not a.locked() and not b.locked(), "a lock is still held after both calls returned"


@pytest.mark.spec("LOCK-5")
def test_one_global_order_never_deadlocks(lock):
    a, b = SpyLock(), SpyLock()
    one_hook, two_hook = Pause(at=1), Pause(at=1)
    try:
        one = testing.Background(lock.take_both_in_order, a, b, one_hook, testing.WAIT)
        seen = _parked_or_done(one, one_hook, "take_both_in_order(a, b) to hold its first lock", a, b)
        assert seen == "parked", f"thread one {seen} before calling holding_first()"
        held = a if a.locked() else b
        two = testing.Background(lock.take_both_in_order, b, a, two_hook, testing.WAIT)
        seen = _parked_or_done(two, two_hook, "take_both_in_order(b, a) to wait for a lock", a, b)
        assert seen == "waiting" and held.waits(two.thread), (
            "take_both_in_order(b, a) took a lock while take_both_in_order(a, b) held the other: "
            "both calls must take the locks in one global order (e.g. sorted by id())"
        )
        one_hook.go.set()
        two_hook.go.set()
        results = _outcome(one, "thread one to finish"), _outcome(two, "thread two to finish")
    finally:
        _release_all(one_hook, two_hook)
        a.free()
        b.free()
    assert results == (True, True), f"the two calls returned {results}, expected (True, True)"
    assert not a.locked() and not b.locked(), "a lock is still held after both calls returned"


@pytest.mark.spec("LOCK-5")
def test_global_order_is_the_same_whatever_the_argument_order(lock):
    a, b = SpyLock(), SpyLock()
    first: list[str] = []
    for pair in ((a, b), (b, a)):
        lock.take_both_in_order(*pair, lambda: first.append("a" if a.locked() else "b"))
    assert len(first) == 2 and first[0] == first[1], (
        f"take_both_in_order(a, b) took {first[0] if first else '?'} first, take_both_in_order(b, a) "
        f"took {first[1] if len(first) > 1 else '?'} first: "
        "sort the two locks (e.g. by id()) before taking them"
    )


# ---------------------------------------------------------------- LOCK-6


@pytest.mark.spec("LOCK-6")
def test_rlock_is_reentrant(lock):
    rlock = threading.RLock()
    runner = testing.Background(lock.can_reenter, rlock)
    again = _outcome(runner, "can_reenter(RLock()) to return")
    assert again is True, f"can_reenter(RLock()) returned {again!r}, expected True: an RLock is re-entrant"
    assert rlock.acquire(blocking=False), "the RLock is still held by the thread that called can_reenter"
    rlock.release()


@pytest.mark.spec("LOCK-6")
def test_plain_lock_is_not_reentrant(lock):
    plain = SpyLock()
    runner = testing.Background(lock.can_reenter, plain)
    try:
        again = _outcome(
            runner,
            "can_reenter(Lock()) to return: it blocked on the lock it already holds, "
            "try the second acquire with blocking=False",
        )
    finally:
        plain.free()
    assert again is False, f"can_reenter(Lock()) returned {again!r}, expected False: a Lock is not re-entrant"
    assert not plain.locked(), "the Lock is still held after can_reenter returned"


# ---------------------------------------------------------------- LOCK-7 / LOCK-8


@pytest.mark.spec("LOCK-7")
def test_a_child_process_changes_its_own_copy(lock, monkeypatch, start_method):
    monkeypatch.setattr(lock.module, "balance", 0)
    before = set(reaper.descendants())
    call = testing.Background(lock.add_in_child, 5)
    child, parent = call.result("add_in_child(5) to start a child, get its balance back and join it")
    left = set(reaper.descendants()) - before - reaper.run_helpers()
    assert not left, (
        f"add_in_child returned with its child process {sorted(left)} not joined (still running, or "
        "exited and never reaped): join the child before returning"
    )
    assert child == 5, f"the child saw balance {child}, expected 5 (0 + 5 in its own copy)"
    assert parent == 0, (
        f"the parent's balance is {parent} after the child added 5, expected 0: "
        "a process has its own memory (did you use a thread?)"
    )
    assert lock.module.balance == 0, f"the parent's balance is {lock.module.balance}, expected 0"


@pytest.mark.spec("LOCK-8")
def test_value_and_its_lock_give_the_exact_total(lock, start_method):
    workers, times, n = 2, 200, 3
    # The default lock of a Value is an RLock, and it must be: the `value.value`
    # property takes it too, so `with value.get_lock(): value.value` re-enters it.
    value = multiprocessing.Value("i", 0)
    unlocked, calls = multiprocessing.Event(), multiprocessing.Value("i", 0)
    hook = functools.partial(lock_probes.check_value_lock, value.get_lock(), unlocked, calls)
    call = testing.Background(lock.add_in_processes, value, workers, times, n, hook)
    total = call.result(
        f"add_in_processes(value, workers={workers}, times={times}) to start, and join, its processes "
        "(a process that waits forever for value.get_lock()?)"
    )
    expected = workers * times * n
    assert calls.value == workers * times, (
        f"between_read_and_write was called {calls.value} times, expected {workers * times} "
        "(once per change, between the read of value.value and the write)"
    )
    assert not unlocked.is_set(), (
        "a process read and wrote value.value without holding value.get_lock(): "
        "wrap each read-and-write in `with value.get_lock():`"
    )
    assert total == expected == value.value, (
        f"add_in_processes returned {total}, value.value is {value.value}, expected {expected}"
    )


# ---------------------------------------------------------------- LOCK-9


@pytest.mark.spec("LOCK-9")
def test_demo_runs_the_notes_program(demo):
    run = demo("lock", "--iterations", "20000")
    assert run.returncode == 0, testing.cut(run.stderr)
    lines = run.stdout.splitlines()
    assert len(lines) == 2 and lines[0].startswith("without the lock: "), "\n".join(lines)
    int(lines[0].rsplit(" ", 1)[1])
    assert lines[1] == "with the lock: 0", f"expected 'with the lock: 0', got {lines[1]!r}"


@pytest.mark.spec("LOCK-9")
def test_race_runs_two_threads_of_the_given_change(lock, monkeypatch):
    monkeypatch.setattr(lock.module, "balance", 7)  # race() starts from 0
    guard = threading.Lock()
    calls: dict[threading.Thread, list[int]] = {}  # keyed by Thread: an ident can be reused

    def change(n: int) -> None:
        with guard:
            calls.setdefault(threading.current_thread(), []).append(n)
            lock.module.balance += n
            lock.module.balance -= n

    call = testing.Background(lock.race, 1000, change)
    result = call.result("race(1000, change) to start two threads and join them")
    assert result == 0, f"race(1000, change) returned {result}, expected 0 (reset balance to 0 first)"
    got = sorted((set(ns), len(ns)) for ns in calls.values())
    assert got == [({5}, 1000), ({8}, 1000)], (
        "expected two threads, one calling change(5) and one calling change(8), 1000 times each; "
        f"got {len(calls)} thread(s) with (values, calls): {got}"
    )


@pytest.mark.spec("LOCK-9")
def test_race_joins_both_threads_before_it_returns_the_balance(lock, monkeypatch):
    monkeypatch.setattr(lock.module, "balance", 7)  # race() starts from 0
    gate, gated = threading.Event(), threading.Event()

    def gated_change(n: int) -> None:
        if n == 8:
            gated.set()
            testing.wait_event(gate, "the test to open the gate of change(8)")
        lock.module.balance += n

    call = testing.Background(lock.race, 1, gated_change)
    try:
        testing.until(
            lambda: gated.is_set() or not call.thread.is_alive(),
            "race(1, change) to call change(8) in a thread",
        )
        if not gated.is_set():
            call.result("race(1, change) to call change(8)")  # it ended first: a stub raises here
        call.parked_in(
            "join",
            "threading.py",
            "race() waiting in Thread.join() for the thread whose change(8) is held at the gate",
        )
    finally:
        gate.set()
    result = call.result("race(1, change) to return once both threads are done")
    assert result == 13, (
        f"race(1, change) returned {result}, expected 13 (0 + 5 + 8): join both threads, "
        "then return balance, so that every change is in it"
    )
