"""threading.Lock: the lost update, the lock that prevents it, deadlock, RLock (spec/08-lock.md).

Run ``python -m solutions.lock`` for the note's program: two threads change
one balance 2,000,000 times each, as in the note (``--iterations`` to change it), without and
with the lock. Tests do not hope for a race: they force one through the
``between_read_and_write`` hook, called after each read of ``balance`` and
before the write that uses it.
"""

from __future__ import annotations

import argparse
import multiprocessing
import threading
from collections.abc import Callable
from typing import Any

#: The note's bank balance, shared by every thread of this process.
balance = 0

#: The lock that guards ``balance``: the class is ``threading.Lock`` (the note's
#: ``threading.lock()`` raises AttributeError).
lock = threading.Lock()


def _nothing() -> None:
    """The default hook: no pause between a read and a write."""


def change_it(n: int, between_read_and_write: Callable[[], object] = _nothing) -> None:
    """LOCK-1: the note's change_it, no lock: add ``n`` to ``balance``, then take it away.

    Each step is a read of ``balance`` and a later write of a value computed from
    that read; ``between_read_and_write()`` is called in between, twice per call.
    """
    global balance
    value = balance
    between_read_and_write()
    balance = value + n
    value = balance
    between_read_and_write()
    balance = value - n


def change_it_safely(n: int, between_read_and_write: Callable[[], object] = _nothing) -> None:
    """LOCK-2, LOCK-3: ``change_it`` while holding the module's ``lock``; released even if it raises."""
    with lock:
        change_it(n, between_read_and_write)


def take_both(
    first: Any,
    second: Any,
    holding_first: Callable[[], object] = _nothing,
    timeout: float = -1,
) -> bool:
    """LOCK-4: take ``first``, call ``holding_first()``, then wait up to ``timeout`` s for ``second``.

    Returns True if both were held at once, False if ``second`` did not come in
    time (a deadlock, detected). Releases whatever it took. ``timeout=-1`` waits forever.
    """
    with first:
        holding_first()
        if not second.acquire(timeout=timeout):
            return False
        second.release()
        return True


def take_both_in_order(
    a: Any,
    b: Any,
    holding_first: Callable[[], object] = _nothing,
    timeout: float = -1,
) -> bool:
    """LOCK-5: ``take_both`` with ``a`` and ``b`` in one global order (by ``id``), whatever order given."""
    first, second = sorted((a, b), key=id)
    return take_both(first, second, holding_first, timeout)


def can_reenter(a_lock: Any) -> bool:
    """LOCK-6: take ``a_lock``, then try it again from the same thread without blocking.

    True for an ``RLock`` (re-entrant), False for a ``Lock`` (it would block on
    itself forever). Leaves the lock free.
    """
    with a_lock:
        again = a_lock.acquire(blocking=False)
        if again:
            a_lock.release()
        return again


def _add_and_send(n: int, conn: Any) -> None:
    """Child process target: add ``n`` to this process's ``balance``, send back what it sees."""
    global balance
    balance += n
    conn.send(balance)
    conn.close()


def add_in_child(n: int) -> tuple[int, int]:
    """LOCK-7: a child process adds ``n`` to ``balance``; return (the child's balance, the parent's).

    The child changes its own copy: the parent's ``balance`` is unchanged.
    """
    receiver, sender = multiprocessing.Pipe(duplex=False)
    child = multiprocessing.Process(target=_add_and_send, args=(n, sender))
    child.start()
    sender.close()
    seen = receiver.recv()
    child.join()
    return seen, balance


def add_to_value(
    value: Any, times: int, n: int, between_read_and_write: Callable[[], object] = _nothing
) -> None:
    """LOCK-8: add ``n`` to ``value.value`` ``times`` times, each read and write under its lock.

    ``value.get_lock()`` is an ``RLock``: the ``value.value`` property takes it
    too, so reading it inside ``with value.get_lock():`` re-enters it.
    """
    for _ in range(times):
        with value.get_lock():
            current = value.value
            between_read_and_write()
            value.value = current + n


def add_in_processes(
    value: Any,
    workers: int,
    times: int,
    n: int,
    between_read_and_write: Callable[[], object] = _nothing,
) -> int:
    """LOCK-8: ``workers`` processes run ``add_to_value`` on one shared ``Value``; return the total."""
    children = [
        multiprocessing.Process(target=add_to_value, args=(value, times, n, between_read_and_write))
        for _ in range(workers)
    ]
    for child in children:
        child.start()
    for child in children:
        child.join()
    return value.value


def _run_thread(n: int, iterations: int, change: Callable[[int], None]) -> None:
    """The note's run_thread: ``change(n)`` over and over."""
    for _ in range(iterations):
        change(n)


def race(iterations: int, change: Callable[[int], None]) -> int:
    """LOCK-9: the note's program: two threads run ``change(5)`` and ``change(8)``; return ``balance``."""
    global balance
    balance = 0
    threads = [threading.Thread(target=_run_thread, args=(n, iterations, change)) for n in (5, 8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return balance


def main(iterations: int = 2_000_000) -> None:
    """LOCK-9: the note's program without the lock (any result; 0 in practice on 3.10+), then with it (0)."""
    print(f"without the lock: {race(iterations, change_it)}", flush=True)
    print(f"with the lock: {race(iterations, change_it_safely)}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--iterations", type=int, default=2_000_000, help="changes per thread (the note: 2000000)"
    )
    main(parser.parse_args().iterations)
