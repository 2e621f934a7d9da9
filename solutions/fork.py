"""os.fork(): one call, two returns (spec/01-fork.md). POSIX only.

Run ``python -m solutions.fork`` for the note's transcript.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Callable


def start_child(child: Callable[[int], object]) -> int:
    """FORK-1, FORK-2, FORK-3, FORK-6: fork; run ``child(fork_result)`` in the child only.

    The child calls ``child`` with what ``os.fork()`` returned there (0) and
    then leaves with ``os._exit``: 0 if ``child`` returned, 1 if it raised.
    It never returns into the caller. The parent gets the child's PID.
    """
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            child(pid)
            code = 0
        finally:
            os._exit(code)
    return pid


def wait_child(pid: int) -> int:
    """FORK-4: wait for the child ``pid`` to end, reap it, return its exit code.

    0 after ``os._exit(0)``, ``n`` after ``os._exit(n)``, ``-N`` after signal N.
    """
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def append_in_child(items: list, item: object) -> tuple[list, list]:
    """FORK-5: append ``item`` in a forked child; the parent's ``items`` stay as they were.

    Returns ``(the child's list, the parent's list)``, the child's view sent
    back through a pipe as ``repr`` text.
    """
    read_end, write_end = os.pipe()

    def child(_: int) -> None:
        os.close(read_end)
        items.append(item)
        os.write(write_end, repr(items).encode())

    pid = start_child(child)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        seen = pipe.read().decode()
    wait_child(pid)
    return ast.literal_eval(seen), items


def main() -> None:
    """FORK-7: print the note's transcript, each line once, in the note's order."""
    print(f"Process ({os.getpid()}) start...", flush=True)
    read_end, write_end = os.pipe()

    def child(_: int) -> None:
        os.read(read_end, 1)  # wait until the parent has printed its line
        print(f"I am child process ({os.getpid()}) and my parent is {os.getppid()}.", flush=True)

    pid = start_child(child)
    print(f"I ({os.getpid()}) just created a child process ({pid}).", flush=True)
    os.write(write_end, b"go")
    wait_child(pid)
    os.close(read_end)
    os.close(write_end)


if __name__ == "__main__":
    main()
