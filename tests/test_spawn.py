"""Tests of spec/06-spawn.md: what spawn (Windows) pickles, re-imports and does not see.

Every test takes the ``start_method`` fixture and passes that method to the
learner's function explicitly (``get_context``); the expected result differs
under fork, and each test says how. Learner calls run in a bounded
``testing.Background`` thread, so a hang fails with its spec ID; a stub
raises at once. The main-guard items run real scripts and the demo as
programs. ``STARTS`` below lists the processes each test starts.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.process
import os
import pickle
import re
import socket
import subprocess
import sys
import threading

import pytest

from kata import learner, testing
from kata.probes import spawn as probes

SCRIPTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scripts_spawn")
BOOTSTRAP = "bootstrapping phase"
PICKLING_ERRORS = (pickle.PicklingError, AttributeError, TypeError)

#: Processes each test starts, by start method (measured with strace): its own children,
#: programs and their helpers. Once per run, not counted here: the import check (one
#: interpreter), this process's resource tracker (spawn, forkserver) and forkserver.
STARTS = {
    "test_a_module_level_target_runs": {"fork": 1, "forkserver": 1, "spawn": 1},
    "test_a_lambda_target": {"fork": 1, "forkserver": 0, "spawn": 0},
    "test_a_script_without_the_main_guard": {"fork": 2, "forkserver": 4, "spawn": 3},
    "test_a_script_with_the_main_guard": {"fork": 2, "forkserver": 4, "spawn": 3},
    "test_importing_the_module_starts_no_process": {"any": 0},  # reuses the import check
    "test_module_state_changed_after_import": {"fork": 1, "forkserver": 1, "spawn": 1},
    "test_unpicklable_objects_elsewhere_do_not_stop_the_child": {"fork": 1, "forkserver": 1, "spawn": 1},
    "test_an_unpicklable_argument_fails_at_start": {"fork": 1, "forkserver": 0, "spawn": 0},
    "test_demo_runs_under_every_start_method": {"fork": 4, "forkserver": 5, "spawn": 4},
    "test_get_context_leaves_the_default_alone": {"fork": 1, "forkserver": 1, "spawn": 1},
}


#: Run in a fresh interpreter: import the module under test with Process.start refused.
_IMPORT_CHECK = """
import importlib, sys
import multiprocessing.process

def _refuse(self):
    raise SystemExit("kata: a process was started while the module was being imported")

multiprocessing.process.BaseProcess.start = _refuse
importlib.import_module(sys.argv[1])
"""

#: module name -> what is wrong with importing it (None: nothing), checked once per run.
_import_verdicts: dict[str, str | None] = {}


def import_problem(config: pytest.Config) -> str | None:
    """Does importing the learner's spawn module start a process? (Checked once, in a fresh interpreter.)

    A module that starts processes when imported cannot be imported by this
    test process either (under spawn its children would hang the import), so
    the check runs in a child with ``Process.start`` refused.
    """
    package = config.getoption("solutions")
    name = f"{package}.spawn"
    if name not in _import_verdicts:
        run = testing.run_program(
            [sys.executable, "-c", _IMPORT_CHECK, name],
            f"`import {name}` in a fresh interpreter",
            env=learner.child_env(package),
        )
        verdict = None
        if "a process was started while the module was being imported" in run.stderr:
            verdict = (
                f"importing {name} starts a process: a spawned child imports the module again and would "
                f"raise RuntimeError '...{BOOTSTRAP}'; call main() only under "
                'if __name__ == "__main__": (see SPAWN-2)'
            )
        _import_verdicts[name] = verdict
    return _import_verdicts[name]


@pytest.fixture
def sp(impl, start_method, request):
    problem = import_problem(request.config)
    if problem:
        ids = ", ".join(a for mark in request.node.iter_markers("spec") for a in mark.args)
        pytest.fail(f"{ids}: {problem}", pytrace=False)
    return impl("spawn")


def bounded(func, *args, what: str):
    """Call the learner's ``func(*args)`` in a thread; fail with the spec ID if it hangs."""
    __tracebackhide__ = True
    return testing.Background(func, *args).result(what)


def raised(func, *args, what: str) -> Exception | None:
    """What ``func(*args)`` raised (None if it returned), with a bound. A stub still fails the test."""
    __tracebackhide__ = True
    try:
        bounded(func, *args, what=what)
    except Exception as exc:
        return exc
    return None


def no_children_left(what: str) -> None:
    __tracebackhide__ = True
    left = multiprocessing.active_children()
    if left:
        testing.fail(f"{what}, yet these children are running: {left}")


# -------------------------------------------------------------------- SPAWN-1


@pytest.mark.spec("SPAWN-1")
def test_a_module_level_target_runs(sp, start_method):
    before = set(multiprocessing.process._children)  # join() takes a process out of this set
    try:
        value = bounded(sp.square_in_child, 7, start_method, what="square_in_child(7) to return")
    except PICKLING_ERRORS as exc:
        testing.fail(
            f"under {start_method}, square_in_child(7) raised {type(exc).__name__}: {exc} — the target is "
            "pickled by module and name: use the module-level function `square`, not a lambda or a nested def"
        )
    left = set(multiprocessing.process._children) - before
    assert value == 49, f"square_in_child(7, {start_method!r}) returned {value!r}, expected 49"
    assert not left, f"square_in_child() returned without joining its child {left}: get(), then join()"


@pytest.mark.spec("SPAWN-1")
def test_a_lambda_target(sp, start_method):
    if start_method == "fork":
        q = multiprocessing.get_context("fork").Queue()
        code = bounded(sp.start_in, "fork", lambda: q.put("ran"), what="start_in('fork', <lambda>)")
        assert testing.get(q, "the lambda to run in the forked child") == "ran"
        assert code == 0, f"under fork a lambda target runs (nothing is pickled); exitcode was {code!r}"
        return
    exc = raised(sp.start_in, start_method, lambda: None, what=f"start_in({start_method!r}, <lambda>)")
    if not isinstance(exc, PICKLING_ERRORS):
        testing.fail(
            f"under {start_method}, start_in(<lambda>) should raise the pickling error from start() "
            f"(let it through); got {f'{type(exc).__name__}: {exc}' if exc else 'no exception'}"
        )
    message = str(exc)
    assert "<lambda>" in message, (
        f"the pickling error should name the <lambda>; it says {type(exc).__name__}: {message}"
    )
    no_children_left("the pickling error comes before any child runs")


# -------------------------------------------------------------------- SPAWN-2


def run_script(name: str, method: str) -> subprocess.CompletedProcess:
    return testing.run_program(
        [sys.executable, os.path.join(SCRIPTS, name), method],
        f"tests/scripts_spawn/{name} {method} to finish",
    )


#: From 3.13.8 and 3.14.1 on (gh-126631) the forkserver preloads ``__main__``: it runs an
#: unguarded script's top level itself, dies bootstrapping, and the parent's start() fails.
FORKSERVER_PRELOADS_MAIN = sys.version_info >= (3, 14, 1) or (3, 13, 8) <= sys.version_info < (3, 14)


@pytest.mark.spec("SPAWN-2")
def test_a_script_without_the_main_guard(start_method):
    run = run_script("unguarded.py", start_method)
    if start_method == "fork":
        assert run.returncode == 0 and "ran" in run.stdout, (
            f"under fork the unguarded script works (the child re-imports nothing):\n{run.stdout}{run.stderr}"
        )
        return
    assert BOOTSTRAP in run.stderr and "RuntimeError" in run.stderr, (
        f"under {start_method}, the child re-runs the script's top level and should raise RuntimeError "
        f"'...{BOOTSTRAP}'; stderr was:\n{testing.cut(run.stderr)}"
    )
    if start_method == "forkserver" and FORKSERVER_PRELOADS_MAIN:
        assert run.returncode != 0 and not run.stdout.strip(), (
            f"under forkserver on Python {sys.version.split()[0]} the forkserver itself re-runs the script "
            f"and dies, so the parent's start() fails; got exit {run.returncode}, stdout:\n{run.stdout}"
        )
        return
    assert run.stdout.splitlines() == ["parent: child exitcode 1"], (
        f"the child should die with exitcode 1 and the parent go on; stdout was:\n{run.stdout}"
    )


@pytest.mark.spec("SPAWN-2")
def test_a_script_with_the_main_guard(start_method):
    run = run_script("guarded.py", start_method)
    assert run.returncode == 0 and BOOTSTRAP not in run.stderr, testing.cut(run.stderr)
    assert re.fullmatch(r"child \d+ ran\nparent: child exitcode 0\n", run.stdout), run.stdout


@pytest.mark.spec("SPAWN-2")
def test_importing_the_module_starts_no_process(request):
    problem = import_problem(request.config)
    if problem:
        testing.fail(problem)


@pytest.mark.spec("SPAWN-2", "SPAWN-5")
def test_the_module_run_as_a_program_under_spawn_is_guarded(sp, demo):
    run = demo("spawn", "--start-method", "spawn")
    assert BOOTSTRAP not in run.stderr, (
        f"run as a program under spawn, the module's child raised RuntimeError '...{BOOTSTRAP}': its top "
        'level starts processes; call main() only under if __name__ == "__main__":\n'
        + testing.cut(run.stderr)
    )
    assert run.returncode == 0, (
        f"`python -m ... spawn --start-method spawn` exited with {run.returncode}:\n"
        + (testing.cut(run.stderr))
    )
    check_demo_lines(run.stdout, "spawn")  # what spawn shows, under every start_method's run


# -------------------------------------------------------------------- SPAWN-3


@pytest.mark.spec("SPAWN-3")
def test_module_state_changed_after_import(sp, start_method, monkeypatch):
    initial = sp.module.GREETING
    changed = "changed after import"
    monkeypatch.setattr(sp.module, "GREETING", changed)
    before = set(multiprocessing.process._children)  # join() takes a process out of this set
    own, passed = bounded(sp.greeting_in_child, start_method, what="greeting_in_child() to return")
    left = set(multiprocessing.process._children) - before
    assert not left, f"greeting_in_child() returned without joining its child {left}: join() it"
    assert passed == changed, (
        f"the value passed as an argument should be the parent's current {changed!r} under every "
        f"method; the child got {passed!r}"
    )
    if start_method == "fork":
        assert own == changed, (
            f"a forked child has a copy of the parent's memory: its GREETING should be {changed!r}, "
            f"it was {own!r} (read the module's GREETING inside the target)"
        )
    else:
        assert own == initial, (
            f"a {start_method} child imports the module afresh: its GREETING should be the import-time "
            f"{initial!r}, it was {own!r} (read the module's GREETING inside the target; the parent's "
            "value travels only as the argument)"
        )


# -------------------------------------------------------------------- SPAWN-4


@pytest.mark.spec("SPAWN-4")
def test_unpicklable_objects_elsewhere_do_not_stop_the_child(sp, start_method, monkeypatch):
    monkeypatch.setattr(sp.module, "HELD_LOCK", threading.Lock(), raising=False)
    monkeypatch.setattr(sp.module, "HELD_LAMBDA", lambda: "not picklable", raising=False)
    with socket.socket() as held_socket:
        try:
            value = bounded(sp.square_in_child, 6, start_method, what="square_in_child(6) to return")
        except PICKLING_ERRORS as exc:
            testing.fail(
                f"with a lock, a lambda and a socket in the parent, square_in_child raised "
                f"{type(exc).__name__}: {exc}. Those are not pickled, only the target and its args are: "
                "if the error names your own target, see SPAWN-1"
            )
        assert held_socket.fileno() >= 0
    assert value == 36, f"square_in_child(6, {start_method!r}) returned {value!r}, expected 36"


@pytest.mark.spec("SPAWN-4")
def test_an_unpicklable_argument_fails_at_start(sp, start_method):
    lock = threading.Lock()
    if start_method == "fork":
        q = multiprocessing.get_context("fork").Queue()
        code = bounded(sp.start_in, "fork", probes.put_type, (q, lock), what="start_in('fork', put_type)")
        assert code == 0, f"under fork nothing is pickled: a lock argument is fine; exitcode was {code!r}"
        got = testing.get(q, "the child to report the arguments it got")
        assert got == [type(lock).__name__], (
            f"start_in('fork', target, args) ran the target with {got} after the queue, expected the lock: "
            "pass the args to Process(target=target, args=args)"
        )
        return
    exc = raised(sp.start_in, start_method, probes.take, (lock,), what="start_in(take, (lock,))")
    if not isinstance(exc, TypeError) or "pickle" not in str(exc):
        testing.fail(
            f"under {start_method}, a threading.Lock as an argument cannot be pickled: start() should raise "
            "TypeError: cannot pickle '_thread.lock' object; "
            f"got {f'{type(exc).__name__}: {exc}' if exc else 'no exception'}"
        )
    no_children_left("an argument that cannot be pickled stops start() in the parent")


# -------------------------------------------------------------------- SPAWN-5


@pytest.mark.spec("SPAWN-5")
def test_demo_runs_under_every_start_method(sp, demo, start_method):
    run = demo("spawn", "--start-method", start_method)
    if BOOTSTRAP in run.stderr:
        testing.fail(
            f"under {start_method} the demo's child raised RuntimeError '...{BOOTSTRAP}': the child re-ran "
            "the module's top level, which starts processes; call main() only under "
            'if __name__ == "__main__":\n' + testing.cut(run.stderr)
        )
    assert run.returncode == 0 and not run.stderr.strip(), (
        f"the demo exited with {run.returncode}:\n{testing.cut(run.stderr)}"
    )
    check_demo_lines(run.stdout, start_method)


def check_demo_lines(stdout: str, start_method: str) -> None:
    """The demo's four lines under ``start_method`` (SPAWN-5)."""
    __tracebackhide__ = True
    lines = stdout.splitlines()
    changed = "changed by main()"
    child_view = changed if start_method == "fork" else "set at import"
    lambda_line = (
        r"a lambda target: ran, exitcode 0"
        if start_method == "fork"
        else rf"a lambda target: (?:{'|'.join(e.__name__ for e in PICKLING_ERRORS)}): .*<lambda>.*"
    )
    patterns = [
        rf"start method: {start_method}, parent PID \d+",
        r"square\(7\) in a child: 49",
        lambda_line,
        re.escape(f"GREETING in the child: {child_view!r}; passed as an argument: {changed!r}"),
    ]
    ok = len(lines) == len(patterns) and all(
        re.fullmatch(p, ln) for p, ln in zip(patterns, lines, strict=True)
    )
    assert ok, f"the demo under {start_method} printed:\n{stdout}\nexpected lines matching:\n" + "\n".join(
        patterns
    )


# -------------------------------------------------------------------- SPAWN-6


@pytest.mark.spec("SPAWN-6")
def test_get_context_leaves_the_default_alone(sp, start_method):
    others = [m for m in ("fork", "forkserver", "spawn") if m != start_method]
    others = [m for m in others if m in multiprocessing.get_all_start_methods()]
    if not others:
        pytest.skip(f"only {start_method} exists here: nothing to switch to")
    other = others[0]
    before = multiprocessing.get_start_method()
    try:
        value = bounded(sp.square_in_child, 3, other, what=f"square_in_child(3, {other!r}) to return")
    except RuntimeError as exc:
        testing.fail(f"square_in_child raised RuntimeError: {exc} — use get_context, not set_start_method")
    except PICKLING_ERRORS as exc:
        testing.fail(f"under {other}, square_in_child raised {type(exc).__name__}: {exc} (see SPAWN-1)")
    after = multiprocessing.get_start_method()
    assert value == 9, f"square_in_child(3, {other!r}) returned {value!r}, expected 9"
    assert after == before, (
        f"the program's default start method was {before!r} and is {after!r} after square_in_child(3, "
        f"{other!r}): pick the method with multiprocessing.get_context, do not change the default"
    )
