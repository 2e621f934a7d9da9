"""Load the implementation under test and call it under guard.

Tests never import ``solutions`` themselves: the ``impl`` fixture loads a
topic's module from the package chosen by ``--solutions`` and hands the test a
:class:`Guarded` view of it. Calling a function through that view contains
what learner code can do to the test process:

* ``NotImplementedError`` (a stub) fails the test with the stub's message;
* ``KeyboardInterrupt``, ``SystemExit`` and ``os._exit`` in the test process
  fail the test instead of ending the whole run (``os._exit`` is checked while
  a guarded call runs: in a child it is the real one);
* a forked child that returns (or raises) back into the caller is stopped at
  once with ``os._exit(RETURNED_CHILD)``, before it can run a second copy of
  the suite. Tests that fork read that exit code to tell the learner why.

Attributes that are not plain functions (constants, classes) come back as
they are; ``view.module`` is the raw module, for passing a function to a child
process (a guarded wrapper would not pickle under spawn).
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
import traceback
import types
from collections.abc import Callable
from typing import Any

from kata import testing

#: Exit status of a forked child that came back into the caller (the kata stopped it).
RETURNED_CHILD = 86


class LoadError(Exception):
    """The solutions package or one of its modules cannot be imported."""


def import_package(package: str) -> types.ModuleType:
    """Import the solutions package, or raise :class:`LoadError` with one clear line."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # a workspace made by `kata init` in the cwd
    try:
        return importlib.import_module(package)
    except ModuleNotFoundError as exc:
        if exc.name and package.split(".")[0] == exc.name.split(".")[0]:
            raise LoadError(
                f"solutions package {package!r} not found (searched the current directory "
                f"and sys.path); create one with `kata init {package}` or check the name"
            ) from None
        raise LoadError(describe_import_error(package, exc)) from None
    except BaseException as exc:
        raise LoadError(describe_import_error(package, exc)) from None


def describe_import_error(name: str, exc: BaseException) -> str:
    """``cannot import ws.fork: ws/fork.py, line 7: SyntaxError: ...`` in one line."""
    where = ""
    if isinstance(exc, SyntaxError) and exc.filename:
        where = f"{os.path.relpath(exc.filename)}, line {exc.lineno}: "
    else:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if "importlib" not in f.filename]
        if frames:
            where = f"{os.path.relpath(frames[-1].filename)}, line {frames[-1].lineno}: "
    message = str(exc).splitlines()[0] if str(exc) else ""
    return f"cannot import {name}: {where}{type(exc).__name__}: {message}".rstrip(": ")


#: Modules whose import failed in this run, with the message: tried once, not once per test.
_broken: dict[str, str] = {}


def load(package: str, module: str) -> types.ModuleType:
    """Import ``package.module``; :class:`LoadError` names the file and line on failure.

    A failed import is not tried again in the same run: every later test of
    the topic fails at once with the same message (an import that hangs costs
    one test's timeout, not one per test).
    """
    import_package(package)
    name = f"{package}.{module}"
    if name in _broken:
        raise LoadError(_broken[name])
    try:
        return importlib.import_module(name)
    except BaseException as exc:
        _broken[name] = describe_import_error(name, exc)
        raise LoadError(_broken[name]) from None


def child_env(package: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for a child interpreter that must import ``package`` (on PYTHONPATH)."""
    parent = os.path.dirname(os.path.dirname(os.path.abspath(import_package(package).__file__ or "")))
    paths = [parent, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(dict.fromkeys(paths)))
    env.update(extra or {})
    return env


real_exit = os._exit  # the real one: the guard swaps os._exit while learner code runs
_guarded_pids: list[int] = []  # the test process, while a guarded call runs in it


class _ExitInTestProcess(BaseException):
    """Raised instead of ``os._exit`` when learner code calls it in the test process."""


def _checked_exit(code: int) -> None:
    """``os._exit`` during a guarded call: real in a child, a failure in the test process."""
    if _guarded_pids and os.getpid() == _guarded_pids[-1]:
        raise _ExitInTestProcess(code)
    real_exit(code)


def guard(func: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a learner function so that it cannot end or fork the test run."""

    @functools.wraps(func)
    def call(*args: Any, **kwargs: Any) -> Any:
        pid = os.getpid()
        _guarded_pids.append(pid)
        os._exit = _checked_exit
        try:
            return func(*args, **kwargs)
        except _ExitInTestProcess as exc:
            testing.fail(
                f"{func.__name__}() called os._exit({exc.args[0]!r}) in the test process; "
                "only a forked child may leave with os._exit"
            )
        except NotImplementedError as exc:
            testing.fail(f"not implemented yet: NotImplementedError: {exc}")
        except KeyboardInterrupt:
            testing.fail(f"{func.__name__}() raised KeyboardInterrupt")
        except SystemExit as exc:
            testing.fail(
                f"{func.__name__}() called sys.exit({exc.code!r}) in the test process; "
                "only a child process may exit"
            )
        finally:
            if os.getpid() != pid:
                # A forked child came back into the caller: stop it here, silently.
                real_exit(RETURNED_CHILD)
            _guarded_pids.pop()
            if not _guarded_pids:
                os._exit = real_exit

    return call


class Guarded:
    """A module seen through :func:`guard`: functions wrapped, the rest as it is."""

    def __init__(self, module: types.ModuleType) -> None:
        self.module = module

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.module, name)
        if isinstance(value, types.FunctionType):
            return guard(value)
        return value

    def __repr__(self) -> str:
        return f"<guarded {self.module.__name__}>"
