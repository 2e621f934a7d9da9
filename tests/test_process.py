"""Tests of spec/02-process.md: Process, start, join, exitcode, is_alive.

Every test runs once per start method (the ``start_method`` fixture). Children
report through a multiprocessing Queue; a child that must be running at a
given moment is held at a gate (an Event) that the test opens.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import re
import signal

import pytest

from kata import probes, testing


@pytest.fixture
def process(impl, start_method):
    return impl("process")


@pytest.mark.spec("PROC-1")
def test_target_runs_with_args_in_a_child_of_the_caller(process, start_method):
    q = multiprocessing.Queue()
    process.start_and_join(probes.report_identity, (q, "test"))
    args, pid, ppid, parent = testing.get(q, "the target to report from the child")
    assert args == ("test",), f"the target got args {args!r}, expected ('test',)"
    assert pid != os.getpid(), "the target ran in the test process, not in a new one"
    assert parent == os.getpid(), f"the child's parent process is {parent}, the caller is {os.getpid()}"
    if start_method != "forkserver":  # there the forkserver forks the child: getppid() is its PID
        assert ppid == os.getpid()


@pytest.mark.spec("PROC-2")
def test_join_waits_for_the_child(process, capfd):
    started, gate, child_lines = multiprocessing.Event(), multiprocessing.Event(), multiprocessing.Queue()
    target = functools.partial(probes.gated_run_proc, started, gate, child_lines)
    runner = testing.Background(process.main, "test", target)
    try:
        runner.parked_in("join", "multiprocessing/process.py", "the child ended: main() must join() it")
        testing.wait_event(started, "the child to start")
        before = capfd.readouterr().out.splitlines()
    finally:
        gate.set()
    runner.result("main() to return after the child ended")
    child = testing.get(child_lines, "the child's line")
    assert re.fullmatch(r"Run Child process test \((\d+)\)\.\.\.", child), child
    after = capfd.readouterr().out.splitlines()
    expected = [f"Parent process {os.getpid()}.", "Child process will start."]
    assert before == expected, f"while the child runs, expected {expected}, got {before}"
    assert after == ["Child process end."], f"after the child ended, got {after}"


@pytest.mark.spec("PROC-2")
def test_demo_prints_the_transcript(demo):
    run = demo("process")
    lines = run.stdout.splitlines()
    assert run.returncode == 0, testing.cut(run.stderr)
    assert [re.sub(r"\d+", "N", ln) for ln in lines] == [
        "Parent process N.",
        "Child process will start.",
        "Run Child process test (N)...",
        "Child process end.",
    ], "\n".join(lines)


@pytest.mark.spec("PROC-3")
def test_exitcode_zero_after_return(process):
    code = process.start_and_join(probes.return_none)
    assert code == 0, f"exitcode was {code!r} after the target returned (expected 0; None means not joined)"


@pytest.mark.spec("PROC-4")
@pytest.mark.parametrize(("arg", "expected"), [(3, 3), (None, 0)], ids=["exit3", "exit_none"])
def test_exitcode_is_the_sys_exit_code(process, arg, expected):
    code = process.start_and_join(probes.exit_with, (arg,))
    assert code == expected, f"exitcode was {code!r} after sys.exit({arg!r}) (expected {expected})"


@pytest.mark.spec("PROC-5")
def test_exitcode_one_after_uncaught_exception(process):
    code = process.start_and_join(probes.raise_error)
    assert code == 1, f"exitcode was {code!r} after an uncaught exception in the child (expected 1)"


@pytest.mark.spec("PROC-6")
@pytest.mark.skipif(os.name != "posix", reason="signal numbers as exit codes are POSIX")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_exitcode_is_minus_the_signal(process, sig):
    started, gate = multiprocessing.Event(), multiprocessing.Event()
    p = multiprocessing.Process(target=probes.announce_and_wait, args=(started, gate))
    p.start()
    testing.wait_event(started, "the child to start")
    code = process.kill_and_join(p, sig)
    assert not p.is_alive(), "the process is still alive after kill_and_join"
    assert code == -sig, f"exitcode was {code!r} after signal {sig.name} (expected {-sig})"


@pytest.mark.spec("PROC-7")
def test_is_alive_through_a_life(process):
    started, gate = multiprocessing.Event(), multiprocessing.Event()
    p = multiprocessing.Process(target=probes.announce_and_wait, args=(started, gate))
    seen = process.life_of(p, gate.set)
    assert seen == (False, True, False), (
        f"is_alive() before start / while running / after join was {seen}, expected (False, True, False)"
    )
    assert p.exitcode == 0, f"after life_of the child's exitcode is {p.exitcode!r}, expected 0 (joined)"
