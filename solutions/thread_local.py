"""threading.local: one value per thread (spec/10-thread_local.md).

Run ``python -m solutions.thread_local`` for the note's transcript.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

#: The note's ThreadLocal object: each thread sees its own ``student`` on it.
local_school = threading.local()

#: The note's first attempt: one global dict, keyed by the Thread object.
global_dict: dict[threading.Thread, object] = {}


def bind_student(student: object) -> None:
    """TLOCAL-1, TLOCAL-3, TLOCAL-4: bind ``student`` to the calling thread (``local_school.student``)."""
    local_school.student = student


def current_student() -> object:
    """TLOCAL-1, TLOCAL-2, TLOCAL-3: the student bound in the calling thread.

    ``AttributeError`` when this thread never bound one, even if others did.
    """
    return local_school.student


def forget_student() -> None:
    """TLOCAL-8: unbind the calling thread's student (``del local_school.student``)."""
    del local_school.student


def greeting() -> str:
    """TLOCAL-1: the note's ``process_student``: ``Hello, <student> (in <thread name>)``."""
    return f"Hello, {current_student()} (in {threading.current_thread().name})"


def process_thread(name: str, after_bind: Callable[[], object] = lambda: None) -> str:
    """TLOCAL-1: bind ``name`` in this thread, call ``after_bind()``, return the greeting.

    ``after_bind`` is a hook between the write and the read: a test passes a
    barrier's ``wait`` so that every thread has bound its student before any reads.
    """
    bind_student(name)
    after_bind()
    return greeting()


def dict_bind_student(student: object) -> None:
    """TLOCAL-5: the note's ``global_dict[threading.current_thread()] = std``."""
    global_dict[threading.current_thread()] = student


def dict_forget(thread: threading.Thread) -> None:
    """TLOCAL-5: remove ``thread``'s entry: with a global dict nothing else ever does."""
    global_dict.pop(thread, None)


class SchoolLocal(threading.local):
    """A thread-local with a default student: every thread starts with its own ``student``."""

    def __init__(self, default: object = None, on_init: Callable[[], object] = lambda: None) -> None:
        """TLOCAL-6: runs once in each thread, on that thread's first use; sets ``student`` to ``default``.

        ``on_init()`` is called each time, so that a test can count the calls.
        """
        on_init()
        self.student = default


def pool_task(name: str, work: Callable[[], object] = greeting) -> object:
    """TLOCAL-8: a pool task: bind ``name``, return ``work()``, unbind in ``finally``.

    A pool's worker thread runs task after task: a value left on a
    ``threading.local`` would be seen by the next task in that thread, even
    when ``work()`` raised.
    """
    bind_student(name)
    try:
        return work()
    finally:
        forget_student()


def main() -> None:
    """TLOCAL-9: the note's transcript: Alice in Thread-A, Bob in Thread-B, each seeing only their own."""
    both_bound = threading.Barrier(2)
    lines: dict[str, str] = {}

    def run(name: str) -> None:
        lines[name] = process_thread(name, both_bound.wait)

    t1 = threading.Thread(target=run, args=("Alice",), name="Thread-A")
    t2 = threading.Thread(target=run, args=("Bob",), name="Thread-B")
    t1.start()
    t2.start()
    t1.join()
    t2.join()
    print(lines["Alice"])
    print(lines["Bob"])


if __name__ == "__main__":
    main()
