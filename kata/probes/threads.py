"""A real program for the threads topic's daemon items (spec/07-threads.md).

``python -m kata.probes.threads MODULE MODE`` imports the module under test
(``solutions.threads`` or a learner's) and starts one thread with its
``start_thread``, then lets the main thread end:

``daemon``
    the thread is a daemon and blocks on an Event nobody sets: the program
    must exit as soon as the main thread ends, printing one line.
``non-daemon``
    the thread is not a daemon and waits until the main thread has ended,
    then prints: the program must wait for it, printing two lines in order.

The exit code is 0 when the program ends normally.
"""

from __future__ import annotations

import importlib
import sys
import threading

from kata.probes import GATE_LIMIT


def _daemon(module: object) -> None:
    never = threading.Event()
    module.start_thread(lambda: never.wait(GATE_LIMIT), name="Background", daemon=True)  # type: ignore[attr-defined]


def _non_daemon(module: object) -> None:
    def outlive_main() -> None:
        threading.main_thread().join()  # returns once the main thread has finished its code
        print("thread LoopThread ran on after MainThread ended.", flush=True)

    module.start_thread(outlive_main, name="LoopThread", daemon=False)  # type: ignore[attr-defined]


def main(argv: list[str]) -> None:
    module_name, mode = argv
    module = importlib.import_module(module_name)
    {"daemon": _daemon, "non-daemon": _non_daemon}[mode](module)
    print("thread MainThread ended.", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
