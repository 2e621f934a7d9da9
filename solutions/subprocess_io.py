"""subprocess: run a program, feed its input, read its output (spec/04-subprocess.md).

Run ``python -m solutions.subprocess_io`` for the note's two transcripts, with
the kata's own look-up program (``solutions/lookup.py``) in place of
``nslookup``, which needs DNS and the network.

Every command is a list: the program and its arguments, each one string, no
shell in between.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence

#: The kata's stand-in for ``nslookup``: this package's lookup.py, run by path
#: with the current interpreter (so it works for any package name).
LOOKUP: list[str] = [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lookup.py")]


def call(cmd: Sequence[str]) -> int:
    """SUBP-1, SUBP-6, SUBP-7: run ``cmd`` (a list, no shell), wait, return its exit code.

    The program writes to our stdout and stderr. A program that does not exist
    raises ``FileNotFoundError``.
    """
    return subprocess.call(list(cmd))


def run_checked(cmd: Sequence[str]) -> str:
    """SUBP-2: run ``cmd``, return what it printed (text); a non-zero exit raises ``CalledProcessError``.

    The error carries the exit code (``returncode``) and the captured
    ``stdout`` and ``stderr``.
    """
    return subprocess.run(list(cmd), check=True, capture_output=True, text=True).stdout


def communicate(cmd: Sequence[str], data: bytes) -> tuple[bytes, bytes, int | None]:
    """SUBP-3: run ``cmd`` with three pipes, feed ``data`` to stdin, return ``(stdout, stderr, returncode)``.

    ``communicate`` writes the input, closes stdin, reads both outputs to the
    end and waits: no deadlock however much either side writes.
    """
    p = subprocess.Popen(list(cmd), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    output, err = p.communicate(data)
    return output, err, p.returncode


def communicate_text(cmd: Sequence[str], text: str) -> tuple[str, str, int | None]:
    """SUBP-4: like ``communicate``, in text mode: ``str`` in, ``str`` out, ``\\r\\n`` read as ``\\n``."""
    p = subprocess.Popen(
        list(cmd), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    output, err = p.communicate(text)
    return output, err, p.returncode


def run_with_timeout(cmd: Sequence[str], timeout: float) -> subprocess.CompletedProcess:
    """SUBP-5: run ``cmd`` with output captured; after ``timeout`` s raise ``TimeoutExpired``.

    ``subprocess.run`` kills the child and waits for it before raising, so
    nothing is left running.
    """
    return subprocess.run(list(cmd), capture_output=True, timeout=timeout)


def main(lookup: Sequence[str] = LOOKUP) -> None:
    """SUBP-8: the note's two transcripts, with ``lookup`` standing in for ``nslookup``."""
    print("$ lookup www.python.org", flush=True)  # flush: the child writes to the same stdout
    r = call([*lookup, "www.python.org"])
    print("Exit code:", r, flush=True)

    print("$ lookup", flush=True)
    output, _, code = communicate(lookup, b"set q=mx\npython.org\nexit\n")
    print(output.decode("utf-8"))
    print("Exit code:", code, flush=True)


if __name__ == "__main__":
    main()
