"""multiprocessing.Process: start, join, exit codes (spec/02-process.md).

Run ``python -m solutions.process`` for the note's transcript. Works under
every start method: targets are module-level functions, so spawn and
forkserver can pickle them.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from multiprocessing import Process


def run_proc(name: str) -> None:
    """The note's target: say who runs it (PROC-1)."""
    print(f"Run Child process {name} ({os.getpid()})...", flush=True)


def start_and_join(target: Callable[..., object], args: tuple = ()) -> int | None:
    """PROC-1, PROC-3, PROC-4, PROC-5: run ``target(*args)`` in a new process, wait, return its exitcode.

    0 when the target returns, the ``sys.exit`` code, 1 after an uncaught exception.
    """
    p = Process(target=target, args=args)
    p.start()
    p.join()
    return p.exitcode


def kill_and_join(p: Process, sig: int = signal.SIGTERM) -> int | None:
    """PROC-6: send signal ``sig`` to the running process ``p``, wait, return its exitcode (-sig)."""
    os.kill(p.pid, sig)
    p.join()
    return p.exitcode


def life_of(p: Process, release: Callable[[], object]) -> tuple[bool, bool, bool]:
    """PROC-7: ``is_alive()`` before ``start()``, while the target runs, after ``join()``.

    ``release()`` lets the target finish; it is called after the second look.
    """
    before = p.is_alive()
    p.start()
    during = p.is_alive()
    release()
    p.join()
    return before, during, p.is_alive()


def main(name: str = "test", target: Callable[[str], object] = run_proc) -> None:
    """PROC-2: the note's transcript; ``join()`` makes the child's line come before the last."""
    print(f"Parent process {os.getpid()}.", flush=True)
    p = Process(target=target, args=(name,))
    print("Child process will start.", flush=True)
    p.start()
    p.join()
    print("Child process end.", flush=True)


if __name__ == "__main__":
    main()
