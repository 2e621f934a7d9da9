"""SPAWN-2: a script that starts a process at module level, with no main guard. Do not copy it.

``python unguarded.py METHOD``. Under fork it works. Under spawn and
forkserver the child imports this file again (as ``__mp_main__``), reaches
``p.start()`` while it is still being prepared, and raises ``RuntimeError:
An attempt has been made to start a new process before the current process
has finished its bootstrapping phase``; it exits with 1 and the parent goes
on. The script exits with the child's exit code.
"""

import multiprocessing
import os
import sys


def hello() -> None:
    print(f"child {os.getpid()} ran", flush=True)


multiprocessing.set_start_method(sys.argv[1], force=True)  # force: the child sets it again on import
p = multiprocessing.Process(target=hello)
p.start()
p.join()
print(f"parent: child exitcode {p.exitcode}", flush=True)
sys.exit(p.exitcode)
