"""SPAWN-2: the same script with the main guard: works under every start method.

``python guarded.py METHOD``. A spawned child imports this file again as
``__mp_main__``; the guard keeps it from starting a process while it does.
"""

import multiprocessing
import os
import sys


def hello() -> None:
    print(f"child {os.getpid()} ran", flush=True)


def main(method: str) -> int:
    multiprocessing.set_start_method(method, force=True)
    p = multiprocessing.Process(target=hello)
    p.start()
    p.join()
    print(f"parent: child exitcode {p.exitcode}", flush=True)
    return p.exitcode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
