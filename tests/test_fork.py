"""Tests of spec/01-fork.md: os.fork() returns twice.

The child reports what it saw through a pipe; the test reaps every child it
made with a bounded wait. The fork start method is irrelevant here: these
tests use os.fork directly and are not parametrised.
"""

from __future__ import annotations

import json
import os
import re
import signal

import pytest

from kata import testing
from kata.learner import RETURNED_CHILD

pytestmark = pytest.mark.skipif(
    not hasattr(os, "fork"),
    reason="os.fork does not exist on this platform (Windows): the fork topic is POSIX only",
)


@pytest.fixture
def fork(impl):
    return impl("fork")


def fork_and_report(fork) -> tuple[int, list, int]:
    """Run ``start_child`` with a child that reports ``[result, getpid, getppid]``.

    Returns (what start_child returned, the child's report, the child's exit code).
    """
    read_end, write_end = os.pipe()

    def child(result):
        os.write(write_end, json.dumps([result, os.getpid(), os.getppid()]).encode())

    try:
        pid = fork.start_child(child)
    finally:
        os.close(write_end)
    try:
        raw = testing.read_fd(read_end, "the child to report and close its end of the pipe")
    finally:
        os.close(read_end)
    if not raw:
        testing.fail("the child never called child(result): nothing came through the pipe")
    code = testing.reap(pid, f"the child {pid} to exit") if isinstance(pid, int) and pid > 0 else None
    return pid, json.loads(raw), code


def explain_exit(code: int | None) -> str:
    if code == RETURNED_CHILD:
        return "the child returned into the caller (the kata stopped it); end it with os._exit"
    return f"the child's exit code was {code}"


@pytest.mark.spec("FORK-1")
def test_child_gets_zero(fork):
    _, (result, _, _), _ = fork_and_report(fork)
    assert result == 0, f"in the child, os.fork()'s result passed to child() was {result!r}, expected 0"


@pytest.mark.spec("FORK-2")
def test_parent_gets_child_pid(fork):
    pid, (_, child_pid, _), _ = fork_and_report(fork)
    assert pid == child_pid, f"start_child returned {pid!r}; the child's own PID is {child_pid}"
    assert pid != os.getpid()


@pytest.mark.spec("FORK-3")
def test_child_finds_parent(fork):
    _, (_, _, ppid), _ = fork_and_report(fork)
    assert ppid == os.getpid(), f"the child's getppid() is {ppid}, the parent's PID is {os.getpid()}"


@pytest.mark.spec("FORK-6")
def test_child_exits_with_os_exit(fork):
    _, _, code = fork_and_report(fork)
    assert code == 0, explain_exit(code)


@pytest.mark.spec("FORK-6")
def test_child_exits_even_when_its_work_raises(fork):
    def child(result):
        raise RuntimeError("the child's work failed")

    pid = fork.start_child(child)
    code = testing.reap(pid, f"the child {pid} to exit")
    assert code == 1, explain_exit(code) + " (expected 1: the work raised, exit in `finally`)"


def _fork_plain(then) -> int:
    """A child made by the test itself, so FORK-4 depends on wait_child only."""
    pid = os.fork()
    if pid == 0:
        try:
            then()
        finally:
            os._exit(0)
    return pid


@pytest.mark.spec("FORK-4")
@pytest.mark.parametrize("code", [0, 3])
def test_wait_child_returns_exit_code_and_reaps(fork, code):
    pid = _fork_plain(lambda: os._exit(code))
    got = fork.wait_child(pid)
    assert got == code, f"wait_child returned {got!r} for a child that called os._exit({code})"
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # nothing left to reap: no zombie


@pytest.mark.spec("FORK-4")
def test_wait_child_reports_the_signal(fork):
    read_end, write_end = os.pipe()
    pid = _fork_plain(lambda: os.read(read_end, 1))  # blocks until killed
    os.kill(pid, signal.SIGKILL)
    got = fork.wait_child(pid)
    os.close(read_end)
    os.close(write_end)
    assert got == -signal.SIGKILL, f"wait_child returned {got!r} for a child killed by SIGKILL (-9)"


@pytest.mark.spec("FORK-5")
def test_child_memory_is_a_copy(fork):
    items = [1, 2]
    child_view, parent_view = fork.append_in_child(items, 3)
    assert child_view == [1, 2, 3], f"the child saw {child_view!r}; it should have appended 3"
    assert parent_view == [1, 2] and items == [1, 2], (
        f"the parent's list became {items!r}: the change was made in the parent's memory, "
        "not in a forked copy"
    )


@pytest.mark.spec("FORK-7")
def test_demo_prints_the_transcript(demo):
    run = demo("fork")
    assert run.returncode == 0, f"the demo exited with {run.returncode}:\n{testing.cut(run.stderr)}"
    lines = run.stdout.splitlines()
    start = re.fullmatch(r"Process \((\d+)\) start\.\.\.", lines[0] if lines else "")
    assert start, f"the first line should be 'Process (PID) start...', got {lines[:1]}"
    parent = start.group(1)
    rest = sorted(lines[1:])
    child_line = re.compile(rf"I am child process \((\d+)\) and my parent is {parent}\.")
    parent_line = re.compile(rf"I \({parent}\) just created a child process \((\d+)\)\.")
    assert len(lines) == 3, (
        f"expected 3 lines, each once; got {len(lines)}:\n"
        + "\n".join(lines)
        + "\n(a repeated 'start...' line means stdout was not flushed before fork;"
        " a missing child line, that the child did not flush before os._exit)"
    )
    children = [m.group(1) for m in map(child_line.fullmatch, rest) if m]
    created = [m.group(1) for m in map(parent_line.fullmatch, rest) if m]
    assert children and created and children == created and children[0] != parent, (
        "the child's line and the parent's line should name the same child PID:\n" + "\n".join(lines)
    )
