"""spawn: what Windows does, reproduced on any platform (spec/06-spawn.md).

Run ``python -m solutions.spawn --start-method spawn`` (or ``fork``,
``forkserver``) to see what a child sees under each start method. Every
function here picks its start method with ``multiprocessing.get_context``,
never by changing the global default.

Everything that starts a process sits below ``if __name__ == "__main__":``:
a spawned child imports this module again (as ``__mp_main__`` when it is
the program), and must not start processes while it does.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
from collections.abc import Callable
from typing import Any

#: Module state, set when the module is imported (SPAWN-3). ``main()`` changes it.
GREETING = "set at import"


def square(n: int, results: Any) -> None:
    """SPAWN-1: the target, a module-level function: put ``n * n`` on the ``results`` queue."""
    results.put(n * n)


def square_in_child(n: int, method: str) -> int:
    """SPAWN-1, SPAWN-4, SPAWN-6: run ``square(n)`` in a child started by ``method``; return ``n * n``.

    The target is the module-level ``square``, which spawn and forkserver can
    pickle (by module and name); the start method comes from
    ``multiprocessing.get_context(method)``, the global default is left alone.
    """
    ctx = multiprocessing.get_context(method)
    results = ctx.Queue()
    p = ctx.Process(target=square, args=(n, results))
    p.start()
    value = results.get()  # read before join: a child that has put data waits until it is read
    p.join()
    return value


def start_in(method: str, target: Callable[..., object], args: tuple = ()) -> int | None:
    """SPAWN-1, SPAWN-4: run ``target(*args)`` in a child started by ``method``; return its exitcode.

    Under spawn and forkserver ``start()`` pickles the target and its
    arguments first: a lambda, or an argument such as a lock, raises the
    pickling error here, in the parent, before any child runs. Under fork
    nothing is pickled.
    """
    p = multiprocessing.get_context(method).Process(target=target, args=args)
    p.start()
    p.join()
    return p.exitcode


def report_greeting(results: Any, passed: str) -> None:
    """SPAWN-3: the target: put ``(GREETING as this process sees it, passed)`` on ``results``."""
    results.put((GREETING, passed))


def greeting_in_child(method: str) -> tuple[str, str]:
    """SPAWN-3: what a child started by ``method`` sees of ``GREETING``, read there and passed in ``args``.

    Returns ``(the child's own GREETING, the parent's GREETING passed in args)``.
    A forked child has a copy of the parent's memory: both are the parent's
    current value. A spawned child imported the module afresh: its own
    ``GREETING`` is the import-time value; only the argument carries the change.
    """
    ctx = multiprocessing.get_context(method)
    results = ctx.Queue()
    p = ctx.Process(target=report_greeting, args=(results, GREETING))
    p.start()
    seen = results.get()
    p.join()
    return seen


#: The note's mistake, kept on purpose for the demo: a lambda as a target (or a manager callable).
_note_target = lambda: None  # noqa: E731


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def main(method: str = "spawn") -> None:
    """SPAWN-2, SPAWN-5: show what a child sees under ``method``; called only under the main guard."""
    global GREETING
    print(f"start method: {method}, parent PID {os.getpid()}", flush=True)
    print(f"square(7) in a child: {square_in_child(7, method)}", flush=True)
    try:
        code = start_in(method, _note_target)
        print(f"a lambda target: ran, exitcode {code}", flush=True)
    except Exception as exc:  # the pickling error that spawn and forkserver give
        print(f"a lambda target: {_describe(exc)}", flush=True)
    GREETING = "changed by main()"
    own, passed = greeting_in_child(method)
    print(f"GREETING in the child: {own!r}; passed as an argument: {passed!r}", flush=True)


def _arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start-method", default="spawn", choices=multiprocessing.get_all_start_methods())
    return parser.parse_args(argv)


if __name__ == "__main__":
    main(_arguments().start_method)
