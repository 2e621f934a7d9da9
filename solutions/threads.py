"""threading.Thread: names, join, exceptions, daemon threads (spec/07-threads.md).

Run ``python -m solutions.threads`` for the note's transcript; ``--delay``
sets the pause between the loop's lines (the note sleeps 1 s, five times).
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable


def current_name() -> str:
    """THREAD-1, THREAD-2: the name of the thread that calls this function.

    ``MainThread`` in the main thread; in a started thread, its name.
    """
    return threading.current_thread().name


def start_thread(
    target: Callable[[], object], name: str | None = None, daemon: bool = False
) -> threading.Thread:
    """THREAD-2, THREAD-3, THREAD-6, THREAD-7: start a thread that runs ``target()``; return it.

    Named ``name`` when one is given; otherwise Python names it ``Thread-N (target)``.
    A daemon thread does not keep the program alive; a non-daemon one does.
    """
    thread = threading.Thread(target=target, name=name, daemon=daemon)
    thread.start()
    return thread


def run_thread(target: Callable[[], object], name: str | None = None) -> None:
    """THREAD-4, THREAD-5: run ``target()`` in a new thread and wait until it has ended.

    An exception raised by ``target`` goes to ``threading.excepthook`` in that
    thread; it does not come back to this caller.
    """
    thread = threading.Thread(target=target, name=name)
    thread.start()
    thread.join()


def loop(count: int = 5, delay: float = 0.0) -> None:
    """THREAD-8: the note's ``loop``: say who runs it, count to ``count``, say it ended."""
    print(f"thread {current_name()} is running...", flush=True)
    for n in range(1, count + 1):
        print(f"thread {current_name()} >>> {n}", flush=True)
        time.sleep(delay)
    print(f"thread {current_name()} ended.", flush=True)


def main(count: int = 5, delay: float = 0.05) -> None:
    """THREAD-8: the note's transcript: ``join()`` makes the main thread's last line come last."""
    print(f"thread {current_name()} is running...", flush=True)
    run_thread(lambda: loop(count, delay), name="LoopThread")
    print(f"thread {current_name()} ended.", flush=True)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5, help="how far the loop counts (default 5)")
    parser.add_argument("--delay", type=float, default=0.05, help="seconds between lines (the note: 1)")
    return parser.parse_args()


if __name__ == "__main__":
    args = _arguments()
    main(args.count, args.delay)
