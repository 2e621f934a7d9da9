"""Helpers for the kata's tests: bounded waits that fail with the spec ID.

Every wait in a test goes through one of these, never through ``sleep``. Each
takes ``what`` (the thing being waited for, in words) and a timeout, and on
timeout fails the running test with its spec IDs, e.g.::

    PROC-1: timed out after 10 s waiting for the child to report its PID

The timeout is ``WAIT`` seconds unless told otherwise (``KATA_WAIT`` in the
environment changes it), well under the per-test limit so that a learner sees
this message rather than pytest-timeout's.
"""

from __future__ import annotations

import contextlib
import os
import queue
import sys
import time
from collections.abc import Callable
from typing import Any, NoReturn

import pytest

from kata.report import cut  # noqa: F401 - re-exported for tests: cut long output

#: Default bound of one wait, in seconds.
WAIT: float = float(os.environ.get("KATA_WAIT", "10"))

#: Spec IDs of the running test; set by the plugin around each test.
current_ids: tuple[str, ...] = ()


def spec_prefix() -> str:
    return ", ".join(current_ids) or "kata"


def fail(message: str) -> NoReturn:
    """Fail the running test with its spec IDs in front of ``message``."""
    __tracebackhide__ = True
    pytest.fail(f"{spec_prefix()}: {message}", pytrace=False)


def _timed_out(what: str, timeout: float) -> NoReturn:
    __tracebackhide__ = True
    fail(f"timed out after {timeout:g} s waiting for {what}")


def wait_event(event: Any, what: str, timeout: float = WAIT) -> None:
    """Wait for a threading or multiprocessing ``Event`` (or proxy) to be set."""
    __tracebackhide__ = True
    if not event.wait(timeout):
        _timed_out(what, timeout)


def get(q: Any, what: str, timeout: float = WAIT) -> Any:
    """``q.get`` with a bound, for ``queue.Queue``, ``multiprocessing`` queues and proxies."""
    __tracebackhide__ = True
    try:
        return q.get(timeout=timeout)
    except queue.Empty:
        _timed_out(what, timeout)


def recv(conn: Any, what: str, timeout: float = WAIT) -> Any:
    """Receive one object from a ``multiprocessing`` Connection, with a bound."""
    __tracebackhide__ = True
    if not conn.poll(timeout):
        _timed_out(what, timeout)
    return conn.recv()


def join(worker: Any, what: str, timeout: float = WAIT) -> None:
    """Join a Thread or Process with a bound; fail if it is still alive."""
    __tracebackhide__ = True
    worker.join(timeout)
    if worker.is_alive():
        _timed_out(what, timeout)


def until(predicate: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    """Poll ``predicate`` (every millisecond, backing off to 20 ms) until it is truthy.

    For conditions nothing can signal, such as "the child is a zombie now";
    prefer an Event or a Queue wherever the code under test can signal.
    """
    __tracebackhide__ = True
    deadline = time.monotonic() + timeout
    pause = 0.001
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            _timed_out(what, timeout)
        time.sleep(pause)  # sleep-ok: polling a condition with a deadline
        pause = min(pause * 2, 0.02)


def blocked_in(thread: Any, function: str, timeout: float = WAIT) -> bool:
    """Wait until ``thread`` has ended or is parked inside a call of ``function``.

    Returns True if it is parked there, False if it ended. Lets a test prove
    that a call (``join``, ``acquire``...) is really blocking, without
    sleeping and hoping. CPython only (``sys._current_frames``).
    """

    def parked() -> str | None:
        if not thread.is_alive():
            return "ended"
        frame = sys._current_frames().get(thread.ident)
        while frame is not None:
            if frame.f_code.co_name == function:
                return "parked"
            frame = frame.f_back
        return None

    return until(parked, f"a thread to block in {function}()", timeout) == "parked"


def read_fd(fd: int, what: str, timeout: float = WAIT) -> bytes:
    """Read a pipe's read end until EOF (every writer closed it), with a bound."""
    __tracebackhide__ = True
    import selectors

    chunks = []
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                _timed_out(what, timeout)
            chunk = os.read(fd, 65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def reap(pid: int, what: str, timeout: float = WAIT) -> int:
    """Wait for our child ``pid`` without blocking forever; return its exit code."""
    __tracebackhide__ = True
    codes: list[int] = []

    def ended() -> bool:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            codes.append(os.waitstatus_to_exitcode(status))
        return bool(done)

    until(ended, what, timeout)
    return codes[0]


def run_program(
    cmd: list[str],
    what: str,
    timeout: float = WAIT,
    input: str | None = None,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
) -> Any:
    """Run a real program to its end, text in and out; kill it and fail on overrun."""
    __tracebackhide__ = True
    import subprocess

    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=cwd,
        start_new_session=os.name == "posix",
    )
    try:
        out, err = proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        _timed_out(what, timeout)
    finally:
        _kill_group(proc)  # anything the program left in its session
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _kill_group(proc: Any) -> None:
    """Stop the program and everything of its session; reap what this process adopted."""
    if os.name == "posix":
        end_session(proc.pid, grace=2.0 if proc.poll() is not None else 0.0)
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def _session_left(sid: int) -> bool:
    """Reap the zombies of session ``sid`` that are ours; is any other member left?"""
    import psutil

    left = False
    for member in psutil.process_iter():
        try:
            if os.getsid(member.pid) != sid:
                continue
        except OSError:
            continue
        try:
            left |= os.waitpid(member.pid, os.WNOHANG)[0] == 0
        except ChildProcessError:
            left = True  # not our child (yet): its parent reaps it, or it is adopted by us
    return left


def end_session(sid: int, grace: float = 2.0) -> None:
    """End session ``sid`` (a program started with ``start_new_session``) without leaks.

    A program's helpers (the forkserver, the resource tracker) outlive it by a
    moment, and the tracker unlinks the program's semaphores only then: they
    get ``grace`` seconds to end by themselves. What is left is killed. As this
    process is a subreaper, the session's orphans are our children: they are
    reaped here, so the containment fixture does not count them as leaks.
    """
    import signal

    deadline = time.monotonic() + grace
    while _session_left(sid) and time.monotonic() < deadline:
        time.sleep(0.01)  # sleep-ok: bounded poll for the program's helpers to end
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(sid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while _session_left(sid) and time.monotonic() < deadline:
        time.sleep(0.005)  # sleep-ok: SIGKILLed processes are gone within a moment


class Background:
    """Run ``func(*args, **kwargs)`` in a daemon thread; keep what it returns or raises.

    For a learner function that blocks (``pool.join()``, ``queue.join()``) while
    the test drives the other side. Every wait is bounded and fails with the
    spec ID; if the function ends early, its exception is raised in the test
    (a stub's ``NotImplementedError`` fails at once, not by timeout).
    """

    def __init__(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        import threading

        self.name = getattr(func, "__name__", "the function")
        self.value: Any = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(func, args, kwargs), daemon=True)
        self.thread.start()

    def _run(self, func: Callable[..., Any], args: tuple, kwargs: dict) -> None:
        try:
            self.value = func(*args, **kwargs)
        except BaseException as exc:  # re-raised in the test by _ended()
            self.error = exc

    def _ended(self, what: str) -> NoReturn:
        __tracebackhide__ = True
        if self.error is not None:
            raise self.error
        fail(f"{self.name}() returned before {what}")

    def next(self, q: Any, what: str, timeout: float = WAIT) -> Any:
        """The next item on ``q``; fail if ``func`` ends first or nothing comes in ``timeout`` s."""
        __tracebackhide__ = True
        deadline = time.monotonic() + timeout
        while True:
            try:
                return q.get(timeout=0.02)
            except queue.Empty:
                if not self.thread.is_alive():
                    self._ended(what)
                if time.monotonic() > deadline:
                    _timed_out(what, timeout)

    def parked_in(self, function: str, filename: str, what: str, timeout: float = WAIT) -> None:
        """Wait until ``func``'s thread blocks in ``function`` of a file whose path ends with ``filename``."""
        __tracebackhide__ = True

        def parked() -> str | None:
            if not self.thread.is_alive():
                return "ended"
            frame = sys._current_frames().get(self.thread.ident)
            while frame is not None:
                code = frame.f_code
                if code.co_name == function and code.co_filename.replace("\\", "/").endswith(filename):
                    return "parked"
                frame = frame.f_back
            return None

        if until(parked, f"{self.name}() to block in {function}() ({what})", timeout) == "ended":
            self._ended(what)

    def result(self, what: str, timeout: float = WAIT) -> Any:
        """Wait for ``func`` to return (bounded); re-raise its exception or return its value."""
        __tracebackhide__ = True
        join(self.thread, what, timeout)
        if self.error is not None:
            raise self.error
        return self.value
