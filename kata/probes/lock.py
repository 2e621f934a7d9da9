"""Probes for the lock topic's process tests (spec/08-lock.md).

Module-level so that spawn and forkserver children can import them.
"""

from __future__ import annotations

import threading
from typing import Any


def _free_for_another_thread(lock: Any) -> bool:
    """Can a thread other than the caller take ``lock`` now? (It is released again at once.)

    The Value's lock is an ``RLock``: its owner may take it again, so asking from
    the thread that holds it would always say yes. Another thread of the same
    process is refused exactly when someone holds it.
    """
    free: list[bool] = []

    def attempt() -> None:
        got = lock.acquire(False)
        if got:
            lock.release()
        free.append(got)

    helper = threading.Thread(target=attempt)
    helper.start()
    helper.join()  # acquire(False) never blocks
    return free[0]


def check_value_lock(lock: Any, unlocked: Any, calls: Any) -> None:
    """A ``between_read_and_write`` hook for a child process: is the Value's lock held now?

    ``lock`` is the Value's own lock (``value.get_lock()``, an ``RLock``: the
    ``value.value`` property takes it too, so a plain ``Lock`` would block on
    itself). If another thread could take it now, nobody holds it: the read and
    the write are not inside ``with value.get_lock():``, and ``unlocked`` (an
    Event) is set. ``calls`` (a Value) counts the calls.
    """
    with calls.get_lock():
        calls.value += 1
    if _free_for_another_thread(lock):
        unlocked.set()
