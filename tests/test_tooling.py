"""The kata's own tooling: the CLI's options and errors, stubs, the learner loader, waits, the reaper.

These are self-tests of ``kata/``, not spec items: no test here has a spec
marker. Most call the code in this process (fast, unmarked); the few that run
``pytest`` or ``kata`` as real programs are marked ``workflow``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import multiprocessing
import os
import queue
import subprocess
import sys
import threading
import types
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from kata import cli, learner, plugin, probes, reaper, stubs, testing
from kata import spec as specs
from kata.probes import distributed as distributed_probe
from kata.probes import lock as lock_probe
from kata.probes import pool as pool_probe
from kata.probes import queue_ipc as queue_probe

#: A program that waits until it is killed (no sleep: it waits for a signal that never comes).
PAUSE = [sys.executable, "-c", "import signal; signal.pause()"]

FIRST = specs.topics()[0]


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in an empty directory, with no KATA_* setting from outside."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KATA_SOLUTIONS", raising=False)
    monkeypatch.delenv("KATA_START_METHOD", raising=False)
    monkeypatch.delenv("KATA_DEBUG", raising=False)
    return tmp_path


@pytest.fixture
def ws(here: Path, capsys: pytest.CaptureFixture) -> Path:
    """A fresh workspace ``ws/`` made by ``kata init`` in this process."""
    assert cli.main(["init"]) == 0
    capsys.readouterr()
    return here / "ws"


def error_line(capsys: pytest.CaptureFixture) -> str:
    """The one line the command wrote on stderr (and no traceback)."""
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    assert "Traceback" not in out + err
    return lines[0]


def write_package(root: Path, name: str, files: dict[str, str]) -> Path:
    """A package ``name`` under ``root`` with these modules (``__init__.py`` empty unless given)."""
    package = root / name
    package.mkdir()
    files = {"__init__.py": "", **files}
    for module, text in files.items():
        (package / module).write_text(text, encoding="utf-8")
    importlib.invalidate_caches()
    return package


@pytest.fixture
def forget_modules() -> Iterator[list[str]]:
    """Names of packages this test imports; removed from ``sys.modules`` afterwards."""
    names: list[str] = []
    yield names
    for key in list(sys.modules):
        if key.split(".")[0] in names:
            del sys.modules[key]


# ---------------------------------------------------------------- cli: input


def test_solutions_given_as_a_path_runs_from_its_parent(here):
    here = Path.cwd()  # resolved, as locate() resolves paths
    assert cli.locate("ws") == ("ws", here)
    assert cli.locate("./ws") == ("ws", here)
    assert cli.locate(str(here / "sub" / "mine") + "/") == ("mine", here / "sub")
    assert cli.locate("..") == (here.parent.name, here.parent.parent)


@pytest.mark.parametrize("value", ["1ws", "my-ws", "ws..x"])
def test_a_value_that_is_no_package_name_exits_4(here, capsys, value):
    assert cli.main(["list", "--solutions", value]) == cli.NO_PACKAGE
    assert "is not a package name" in error_line(capsys)


def test_a_module_without_a_spec_counts_as_missing(here, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "kata_specless", types.ModuleType("kata_specless"))
    assert cli.main(["list", "--solutions", "kata_specless"]) == cli.NO_PACKAGE
    assert "kata init kata_specless" in error_line(capsys)


def test_a_missing_package_elsewhere_names_the_directory(here, capsys):
    assert cli.main(["list", "--solutions", "elsewhere/ws"]) == cli.NO_PACKAGE
    line = error_line(capsys)
    assert f"in {Path.cwd() / 'elsewhere'}" in line and "--solutions path/to/ws" in line, line


def test_pytest_command_maps_ids_topics_and_options(here):
    args = cli.build_parser().parse_args(
        ["check", FIRST.ids[0].lower(), FIRST.ids[1], FIRST.name, "--json", "r.json", "--junitxml", "j.xml",
         "-x", "-n", "2", "--timeout", "5", "--start-method", "fork"]
    )  # fmt: skip
    cmd = cli.pytest_command(args)
    assert cmd.count(str(specs.ROOT / FIRST.tests)) == 1, cmd
    assert cmd[cmd.index("--spec") + 1] == f"{FIRST.ids[0]},{FIRST.ids[1]},{FIRST.name}"
    assert cmd[cmd.index("--kata-json") + 1] == str(here / "r.json")
    assert cmd[cmd.index("--junitxml") + 1] == str(here / "j.xml")
    assert cmd[cmd.index("-n") + 1] == "2" and "-x" in cmd and "xdist.plugin" in cmd
    assert cmd[cmd.index("--timeout") + 1] == "5.0"
    assert cmd[cmd.index("--start-method") + 1] == "fork"
    plain = cli.pytest_command(cli.build_parser().parse_args(["check", "-n", "0"]))
    assert "--spec" not in plain and "-x" not in plain and "-n" not in plain and "--timeout" not in plain
    assert plain[-len(cli.topic_test_files()) :] == cli.topic_test_files()
    assert "xdist.plugin" not in plain and "pytest_timeout" in plain


def test_workers_default_to_two_for_several_topics_on_two_cpus(monkeypatch):
    monkeypatch.delenv("KATA_WORKERS", raising=False)
    assert cli.build_parser().parse_args(["check"]).workers == "auto"
    monkeypatch.setattr(cli.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert cli.workers_for("auto", 11) == "2"
    assert cli.workers_for("auto", 1) == "0", "one topic: one process"
    assert cli.workers_for("3", 1) == "3", "a number given is kept"
    monkeypatch.setattr(cli.os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert cli.workers_for("auto", 11) == "0", "one CPU: one process"


def test_check_refuses_an_unavailable_start_method(here, capsys, monkeypatch):
    monkeypatch.setattr(plugin, "available_methods", lambda: ("spawn",))
    assert cli.main(["check", FIRST.name, "--start-method", "fork"]) == 2
    line = error_line(capsys)
    assert "'fork' is not available" in line and "spawn" in line, line
    assert plugin.selected_methods("all") == ("spawn",)


def test_main_turns_sys_exit_into_its_code(here, capsys, monkeypatch):
    def exits(args: argparse.Namespace) -> int:
        raise SystemExit(int(args.id) or None)

    monkeypatch.setattr(cli, "cmd_hint", exits)
    assert cli.main(["hint", "0"]) == 0
    assert cli.main(["hint", "7"]) == 7
    # A message in SystemExit is a one-line error with exit 2.
    monkeypatch.setattr(cli, "cmd_hint", lambda args: sys.exit("the spec directory is gone"))
    assert cli.main(["hint", "x"]) == 2
    assert error_line(capsys) == "kata: the spec directory is gone"


def test_main_reports_an_interrupt_with_130(here, capsys, monkeypatch):
    def interrupted(args: argparse.Namespace) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_list", interrupted)
    assert cli.main(["list"]) == 130
    assert error_line(capsys) == "kata: interrupted"


def test_main_stays_quiet_when_the_reader_of_its_output_left(here, capsys, monkeypatch):
    def broken_pipe(args: argparse.Namespace) -> int:
        raise BrokenPipeError

    monkeypatch.setattr(cli, "cmd_list", broken_pipe)
    assert cli.main(["list"]) == 1
    assert capsys.readouterr().err == ""


def test_an_internal_error_is_one_line_unless_kata_debug(here, capsys, monkeypatch):
    def crashes(args: argparse.Namespace) -> int:
        raise RuntimeError("the table is round")

    monkeypatch.setattr(cli, "cmd_list", crashes)
    assert cli.main(["list"]) == 3
    line = error_line(capsys)
    assert line == "kata: internal error: RuntimeError: the table is round (KATA_DEBUG=1 shows where)"
    monkeypatch.setenv("KATA_DEBUG", "1")
    with pytest.raises(RuntimeError, match="the table is round"):
        cli.main(["list"])


# ------------------------------------------------------ cli: hint, list, init


def test_hint_of_an_id_and_of_a_whole_topic(here, capsys):
    item = FIRST.items[0]
    assert cli.main(["hint", item.id.lower()]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{item.id} — {item.title}  (topic {FIRST.name})\n") and item.hint_line in out
    assert cli.main(["hint", FIRST.name]) == 0
    out = capsys.readouterr().out
    for each in FIRST.items:
        assert f"{each.id} — {each.title}\n  {each.hint_line}" in out, out


def test_list_of_one_topic(here, capsys):
    assert cli.main(["list", FIRST.module.upper()]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(FIRST.name) and f"({len(FIRST.items)} items, {FIRST.module}.py)" in out[0]
    assert [line.split()[0] for line in out[1:]] == FIRST.ids
    assert cli.main(["list", "nosuchtopic"]) == 2
    assert "unknown topic 'nosuchtopic'" in error_line(capsys)


def test_list_of_a_workspace_shows_its_last_verdicts(ws, capsys):
    assert cli.main(["list", FIRST.name, "--solutions", "ws"]) == 0
    assert "(no check recorded in" in capsys.readouterr().out
    report = ws.parent / "r.json"
    first, second = FIRST.ids[:2]
    report.write_text(json.dumps({"specs": {first: {"status": "pass"}, second: {"status": "fail"}}}))
    cli.record_status(ws / stubs.STATE_DIR, report)
    assert json.loads((ws / ".kata" / "last.json").read_text()) == json.loads(report.read_text())
    module = ws / f"{FIRST.module}.py"
    checked = cli.read_status(ws / stubs.STATE_DIR)[first]["checked"]
    os.utime(module, (checked - 100, checked - 100))
    assert cli.main(["list", FIRST.name, "--solutions", "ws"]) == 0
    out = capsys.readouterr().out
    assert f"1/{len(FIRST.items)} pass" in out and "file changed since" not in out, out
    assert f"  {first:<10} pass  " in out and f"  {second:<10} FAIL  " in out, out
    assert f"  {FIRST.ids[2]:<10} ·     " in out and "(from the last kata check" in out, out
    os.utime(module, (checked + 100, checked + 100))
    assert cli.main(["list", FIRST.name, "--solutions", "ws"]) == 0
    assert "(file changed since)" in capsys.readouterr().out


def test_status_files_that_are_missing_or_broken_count_as_no_check(here, tmp_path):
    assert cli.read_status(None) == {}
    state = tmp_path / "state"
    cli.record_status(state, tmp_path / "no-report.json")
    assert not state.exists()
    state.mkdir()
    (state / cli.STATUS).write_text("[1, 2]")
    assert cli.read_status(state) == {}
    (state / cli.STATUS).write_text("{not json")
    assert cli.read_status(state) == {}


def test_init_that_cannot_write_says_why(here, capsys):
    (here / "afile").write_text("")
    assert cli.main(["init", "afile/ws"]) == 2
    assert error_line(capsys).startswith("kata: cannot write afile/ws: ")


def test_init_names_the_reference_modules_it_skipped(here, capsys, monkeypatch, tmp_path_factory):
    reference = write_package(
        tmp_path_factory.mktemp("reference"),
        "solutions",
        {"good.py": 'def f():\n    """GOOD-1: do it."""\n    return 1\n', "bad.py": "def broken(:\n"},
    )
    make = stubs.make_workspace
    monkeypatch.setattr(stubs, "make_workspace", lambda path, force: make(path, force, reference))
    assert cli.main(["init", "mine"]) == 0
    out = capsys.readouterr().out
    assert "1 functions to write" in out and "GOOD-1" in out, out
    assert "(skipped solutions/bad.py (line 1: " in out, out
    assert not (here / "mine" / "bad.py").exists()


def test_init_refuses_a_path_that_is_a_file(here, capsys):
    (here / "ws").write_text("")
    assert cli.main(["init"]) == 2
    assert error_line(capsys) == "kata: ws exists and is not a directory"


# -------------------------------------------------------- cli: reset, check


def test_reset_refuses_the_reference_and_unknown_topics(here, capsys):
    assert cli.main(["reset", FIRST.name, "--solutions", str(stubs.REFERENCE_DIR)]) == 2
    assert "not on the reference" in error_line(capsys)
    assert cli.main(["reset", "nosuchtopic", "--solutions", "ws"]) == 2
    assert "unknown topic 'nosuchtopic'" in error_line(capsys)


def test_reset_of_a_stub_keeps_nothing_and_of_a_missing_file_writes_it(ws, capsys):
    assert cli.main(["reset", FIRST.name, "--solutions", "ws"]) == 0
    assert "it was the stub already, nothing kept" in capsys.readouterr().out
    module = ws / f"{FIRST.module}.py"
    module.unlink()
    assert cli.main(["reset", FIRST.module, "--solutions", "ws"]) == 0
    assert module.read_text(encoding="utf-8") == stubs.stub_file(Path(module.name))[0]
    assert not list(ws.glob("*.bak-*"))


def test_reset_of_a_reference_module_that_does_not_parse(ws, capsys, monkeypatch, tmp_path_factory):
    reference = write_package(tmp_path_factory.mktemp("reference"), "solutions", {"wip.py": "def x(:\n"})
    monkeypatch.setattr(stubs, "REFERENCE_DIR", reference)
    reset = stubs.reset_module
    monkeypatch.setattr(stubs, "reset_module", lambda path, module: reset(path, module, reference))
    assert cli.main(["reset", "wip", "--solutions", "ws"]) == 2
    assert error_line(capsys).startswith("kata: solutions/wip.py, line 1: ")
    with pytest.raises(stubs.WorkspaceError, match="no module 'gone'"):
        reset(ws, "gone", reference)


def fake_run(calls: list[list[str]], code: int, verdict: str = "pass"):
    """A stand-in for ``run_contained``: note the command, write the report it asks for, exit ``code``."""

    def run(cmd: list[str], deadline: float, cwd: Path | None = None, package: str | None = None) -> int:
        calls.append(cmd)
        if "--kata-json" in cmd:
            ids = cmd[cmd.index("--spec") + 1].split(",") if "--spec" in cmd else []
            report = {"specs": {i: {"status": verdict} for i in ids}}
            Path(cmd[cmd.index("--kata-json") + 1]).write_text(json.dumps(report))
        return code

    return run


def test_check_of_a_workspace_records_its_verdicts(ws, capsys, monkeypatch):
    calls: list[list[str]] = []
    monkeypatch.setattr(cli, "run_contained", fake_run(calls, 1, "fail"))
    assert cli.main(["check", FIRST.ids[0], "--solutions", "ws"]) == 1
    assert calls[-1][calls[-1].index("--kata-json") + 1] == str((ws / ".kata" / "last.json").resolve())
    assert cli.read_status(ws / ".kata")[FIRST.ids[0]]["status"] == "fail"
    # With --json the report goes there, and the workspace still records it.
    assert cli.main(["check", FIRST.ids[0], "--solutions", "ws", "--json", "mine.json"]) == 1
    assert calls[-1][calls[-1].index("--kata-json") + 1] == str(Path.cwd() / "mine.json")
    assert (ws / ".kata" / "last.json").read_text() == (ws.parent / "mine.json").read_text()
    # The reference keeps no state, and a run that selected nothing says so.
    monkeypatch.setattr(cli, "run_contained", fake_run(calls, 5))
    assert cli.main(["check", FIRST.name, "--solutions", str(stubs.REFERENCE_DIR)]) == 2
    assert "--kata-json" not in calls[-1]
    assert error_line(capsys) == "kata: no test was selected"


def test_run_contained_stops_a_run_at_its_deadline(here, capsys):
    assert cli.run_contained(PAUSE, deadline=0.3, cwd=here) == 3
    assert error_line(capsys) == "kata: the run passed its deadline of 0.3 s and was stopped"


def test_run_contained_stops_the_run_when_interrupted(here, capsys, monkeypatch):
    started: list[subprocess.Popen] = []

    class Interrupted(subprocess.Popen):
        def wait(self, timeout: float | None = None) -> int:
            started.append(self)
            if timeout is not None:
                raise KeyboardInterrupt  # Ctrl-C while kata check waits for its pytest
            return super().wait(timeout)

    monkeypatch.setattr(cli.subprocess, "Popen", Interrupted)
    assert cli.run_contained(PAUSE, deadline=60, package="ws") == 130
    assert error_line(capsys) == "kata: interrupted"
    assert started[0].returncode is not None, "the run was left running"


# ---------------------------------------------------------- cli: watch, demo


def test_watch_checks_the_topic_of_each_saved_module(ws, capsys, monkeypatch):
    watchfiles = pytest.importorskip("watchfiles")
    saved = [{(watchfiles.Change.modified, str(ws / f"{FIRST.module}.py"))}, {(1, str(ws / "README.md"))}]
    monkeypatch.setattr(watchfiles, "watch", lambda path, raise_interrupt: iter(saved))
    checked: list[argparse.Namespace] = []

    def check(args: argparse.Namespace) -> int:
        checked.append(args)
        return 1

    monkeypatch.setattr(cli, "cmd_check", check)
    assert cli.main(["watch", "--solutions", "ws", "--start-method", "fork"]) == 0
    assert [(a.targets, a.json, a.start_method, a.solutions) for a in checked] == [
        ([FIRST.name], None, "fork", "ws")
    ]
    out = capsys.readouterr().out
    assert f"== {FIRST.module}.py changed: kata check {FIRST.name} --solutions ws" in out, out
    assert out.count("kata watch: waiting for changes") == 2, out
    # Ctrl-C during a check ends the watch.
    monkeypatch.setattr(cli, "cmd_check", lambda args: 130)
    assert cli.main(["watch", "--solutions", "ws"]) == 130


def test_demo_runs_the_topic_module_of_the_package(here, capfd):
    write_package(
        here, "mydemo", {f"{FIRST.module}.py": "import sys\nprint('demo', sys.argv[1:])\nsys.exit(3)\n"}
    )
    assert cli.main(["demo", "--solutions", "mydemo", FIRST.name, "--fast"]) == 3
    assert capfd.readouterr().out == "demo ['--fast']\n"


def test_demo_interrupted_exits_130(here, monkeypatch):
    def interrupted(*args: object, **kwargs: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli.subprocess, "call", interrupted)
    assert cli.main(["demo", FIRST.name]) == 130


# ------------------------------------------------------------------- plugin


def test_spec_selection_takes_topics_and_ids_and_refuses_unknown_words():
    assert plugin._expand_selection(f"{FIRST.name}, ,{FIRST.ids[0].lower()}") == set(FIRST.ids)
    assert plugin._expand_selection("") == set()
    with pytest.raises(pytest.UsageError, match=r"unknown spec ID or topic 'FORKK-1'.*did you mean"):
        plugin._expand_selection("FORKK-1")


def test_start_methods_unknown_or_unavailable(monkeypatch):
    assert plugin.selected_methods(" spawn, spawn ,") == ("spawn",)
    with pytest.raises(pytest.UsageError, match=r"unknown start method 'forks'.*did you mean fork"):
        plugin.selected_methods("forks")
    monkeypatch.setattr(plugin, "available_methods", lambda: ("spawn",))
    with pytest.raises(pytest.UsageError, match=r"'forkserver' is not available on .*has: spawn\)"):
        plugin.selected_methods("forkserver")


INNER_TESTS = """\
import pytest

@pytest.mark.spec("{first}")
def test_fails():
    assert 1 == 2, "one is not two"

@pytest.mark.spec("{second}")
def test_passes():
    pass

def test_tooling():
    pass
"""


def inner_pytest(where: Path, *args: str) -> subprocess.CompletedProcess:
    """Run pytest with the kata's plugin on the test file in ``where``, as a real program."""
    cmd = [sys.executable, "-m", "pytest", "-p", "kata.plugin", "-p", "no:cacheprovider", "-q", *args]
    cmd += ["--rootdir", str(where), "-c", os.devnull, "test_inner.py"]
    return testing.run_program(cmd, "the inner pytest run to finish", timeout=60, cwd=str(where))


@pytest.mark.workflow
def test_plugin_reports_selects_and_refuses_in_a_real_run(tmp_path):
    first, second = FIRST.ids[:2]
    (tmp_path / "test_inner.py").write_text(INNER_TESTS.format(first=first, second=second))
    run = inner_pytest(tmp_path, "--spec", first, "--kata-json", "r.json")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "1 failed, 2 deselected" in run.stdout, run.stdout
    assert f"[{first}] AssertionError: one is not two" in run.stdout, run.stdout
    assert "kata: JSON report written to r.json" in run.stdout, run.stdout
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["specs"][first]["status"] == "fail" and set(report["specs"]) == {first}
    # Under pytest-xdist the workers send their reports; the controller alone writes the table.
    run = inner_pytest(tmp_path, "-n", "1", "--spec", first)
    assert run.returncode == 1, run.stdout + run.stderr
    assert run.stdout.count("kata conformance") == 1 and f"{first}" in run.stdout, run.stdout
    # Only tests with no spec item: no conformance table.
    run = inner_pytest(tmp_path, "-k", "tooling")
    assert run.returncode == 0 and "kata conformance" not in run.stdout, run.stdout
    # A package that does not import, and a marker that names no spec item, stop the run at once.
    run = inner_pytest(tmp_path, "--solutions", "nosuchpackage")
    assert run.returncode == 4 and "solutions package 'nosuchpackage' not found" in run.stderr, run.stderr
    (tmp_path / "test_inner.py").write_text(INNER_TESTS.format(first="NOPE-99", second=second))
    run = inner_pytest(tmp_path)
    assert run.returncode == 4 and "tests name spec IDs that no spec file defines: NOPE-99" in run.stderr


# ------------------------------------------------------------------ learner


def test_a_missing_package_says_how_to_make_one(here, monkeypatch):
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(here))])
    with pytest.raises(learner.LoadError, match=r"package 'nosuchpkg' not found .* `kata init nosuchpkg`"):
        learner.import_package("nosuchpkg")
    assert sys.path[0] == os.getcwd()


@pytest.mark.parametrize(
    ("init", "expected"),
    [
        (
            "import kata_no_such_dependency\n",
            "ModuleNotFoundError: No module named 'kata_no_such_dependency'",
        ),
        ("x = 1\nraise SystemExit(3)\n", "SystemExit: 3"),
        ("\n\ndef broken(:\n", "SyntaxError: "),
    ],
    ids=["dependency", "exit", "syntax"],
)
def test_a_package_that_does_not_import_is_named_with_file_and_line(
    here, monkeypatch, forget_modules, init, expected
):
    monkeypatch.setattr(sys, "path", list(sys.path))
    name = f"badpkg_{len(init)}"
    forget_modules.append(name)
    write_package(here, name, {"__init__.py": init})
    line = init.count("\n")
    with pytest.raises(learner.LoadError) as failed:
        learner.import_package(name)
    message = str(failed.value)
    assert message.startswith(f"cannot import {name}: {name}/__init__.py, line {line}: "), message
    assert expected in message, message


def test_a_broken_module_is_imported_once(here, monkeypatch, forget_modules):
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(learner, "_broken", {})
    forget_modules.append("onceoff")
    write_package(here, "onceoff", {"fork.py": "import os\nos.environ['KATA_TOOLING_TRIES'] += 'x'\n1 / 0\n"})
    monkeypatch.setenv("KATA_TOOLING_TRIES", "")
    for _ in range(2):
        with pytest.raises(learner.LoadError) as failed:
            learner.load("onceoff", "fork")
        assert str(failed.value) == (
            "cannot import onceoff.fork: onceoff/fork.py, line 3: ZeroDivisionError: division by zero"
        )
    assert os.environ["KATA_TOOLING_TRIES"] == "x"


def test_an_error_with_no_traceback_or_message_is_still_one_line():
    assert learner.describe_import_error("ws.fork", ValueError()) == "cannot import ws.fork: ValueError"


def test_a_guarded_module_shows_what_it_wraps():
    view = learner.Guarded(types.ModuleType("ws.fork"))
    assert repr(view) == "<guarded ws.fork>"


# ------------------------------------------------------------------- stubs


REFERENCE_SOURCE = '''\
"""A topic."""

from solutions import fork
from solutions.fork import helper  # kept, made relative
import solutions

LIMIT = 3


def only_doc():
    """DEMO-1: just a docstring."""


def no_doc(x):
    return x


async def served(x):
    """Serves DEMO-2 and DEMO-3 (a docstring that does not start with them)."""
    return x


class Worker:
    """DEMO-4: a class."""

    def __init__(self):
        """DEMO-4: set it up."""
        self.x = 1

    def __repr__(self):
        return "w"

    def run(self):
        """DEMO-5, DEMO-6 which runs."""
        return 2


def _private():
    return 3
'''


def test_stubs_of_every_kind_of_function_and_import():
    text, done = stubs.stub_source(REFERENCE_SOURCE, package_depth=2)
    by_name = {d.qualname: d for d in done}
    assert list(by_name) == ["only_doc", "no_doc", "served", "Worker.__init__", "Worker.run"]
    assert by_name["only_doc"].message == "DEMO-1: just a docstring."
    assert by_name["no_doc"].message == "no_doc: write no_doc()" and by_name["no_doc"].ids == ()
    assert by_name["served"].ids == ("DEMO-2", "DEMO-3")
    assert by_name["Worker.run"].ids == ("DEMO-5", "DEMO-6")
    assert '"""DEMO-1: just a docstring."""\n    raise NotImplementedError(' in text
    assert "from .. import fork\nfrom ..fork import helper  # kept, made relative\nimport solutions\n" in text
    assert 'def __repr__(self):\n        return "w"' in text and "def _private():\n    return 3" in text
    namespace: dict = {}
    exec(compile(text.replace("from ..", "# from .."), "stub", "exec"), namespace)
    with pytest.raises(NotImplementedError, match=r"DEMO-4: set it up\."):
        namespace["Worker"]()


def test_docstring_ids_of_empty_and_plain_docstrings():
    assert stubs.docstring_ids(None) == ((), "")
    assert stubs.docstring_ids("  \n ") == ((), "")
    assert stubs.docstring_ids("POOL-3 and POOL-4 start five tasks\nmore") == (
        ("POOL-3", "POOL-4"),
        "start five tasks",
    )


def test_backups_never_overwrite_each_other(tmp_path):
    kept = []
    for text in ("one", "two", "three"):
        (tmp_path / "fork.py").write_text(text)
        kept.append(stubs.backup(tmp_path / "fork.py", stamp="20260101-000000"))
    assert [k.name for k in kept] == ["fork.py.bak-20260101-000000", "fork.py.bak-20260101-000000-2",
                                      "fork.py.bak-20260101-000000-3"]  # fmt: skip
    assert [k.read_text() for k in kept] == ["one", "two", "three"]


@pytest.mark.parametrize("name", ["kata", "json", "sys", "class-1"])
def test_workspace_names_that_would_shadow_or_are_not_names(tmp_path, name):
    with pytest.raises(stubs.WorkspaceError):
        stubs.check_name(tmp_path / name)


# ------------------------------------------------------------------ testing


def as_spec_item(monkeypatch: pytest.MonkeyPatch) -> str:
    """Make the running test look like a spec item's, as the plugin does for one (set in the test body:
    the plugin sets ``current_ids`` when the call phase starts)."""
    monkeypatch.setattr(testing, "current_ids", (FIRST.ids[0],))
    return FIRST.ids[0]


def timed_out(ids: str, what: str, timeout: float = 0.05) -> str:
    return rf"^{ids}: timed out after {timeout:g} s waiting for {what}$"


def test_each_bounded_wait_fails_with_the_spec_id_and_what_it_waited_for(monkeypatch):
    ids = as_spec_item(monkeypatch)
    with pytest.raises(pytest.fail.Exception, match=timed_out(ids, "the event")):
        testing.wait_event(threading.Event(), "the event", timeout=0.05)
    with pytest.raises(pytest.fail.Exception, match=timed_out(ids, "an item")):
        testing.get(queue.Queue(), "an item", timeout=0.05)
    with pytest.raises(pytest.fail.Exception, match=timed_out(ids, "never")):
        testing.until(lambda: False, "never", timeout=0.05)
    mine, theirs = multiprocessing.Pipe()
    try:
        with pytest.raises(pytest.fail.Exception, match=timed_out(ids, "a message")):
            testing.recv(mine, "a message", timeout=0.05)
        theirs.send("hello")
        assert testing.recv(mine, "a message") == "hello"
    finally:
        mine.close()
        theirs.close()
    read, write = os.pipe()
    try:
        with pytest.raises(pytest.fail.Exception, match=timed_out(ids, "EOF")):
            testing.read_fd(read, "EOF", timeout=0.05)
    finally:
        os.close(read)
        os.close(write)


def test_join_fails_while_the_worker_lives(monkeypatch):
    ids = as_spec_item(monkeypatch)
    gate = threading.Event()
    worker = threading.Thread(target=gate.wait, args=(testing.WAIT,))
    worker.start()
    try:
        with pytest.raises(pytest.fail.Exception, match=timed_out(ids, "the worker")):
            testing.join(worker, "the worker", timeout=0.05)
    finally:
        gate.set()
        testing.join(worker, "the worker")
    assert testing.blocked_in(worker, "wait") is False  # it has ended: not parked anywhere


def test_run_program_kills_a_program_that_overruns(monkeypatch):
    ids = as_spec_item(monkeypatch)
    before = {p.pid for p in psutil.Process().children()}
    with pytest.raises(pytest.fail.Exception, match=timed_out(ids, "the program", 0.2)):
        testing.run_program(PAUSE, "the program", timeout=0.2)
    assert {p.pid for p in psutil.Process().children()} <= before


def test_background_reports_how_the_function_ended(monkeypatch):
    ids = as_spec_item(monkeypatch)
    early = testing.Background(lambda: 7)
    assert early.result("the result") == 7
    with pytest.raises(pytest.fail.Exception, match=rf"^{ids}: <lambda>\(\) returned before an item$"):
        early.next(queue.Queue(), "an item")

    def raises() -> None:
        raise NotImplementedError("write it")

    failing = testing.Background(raises)
    with pytest.raises(NotImplementedError, match="write it"):
        failing.result("the result")
    with pytest.raises(NotImplementedError, match="write it"):
        failing.next(queue.Queue(), "an item")

    gate = threading.Event()
    waiting = testing.Background(gate.wait, testing.WAIT)
    try:
        with pytest.raises(pytest.fail.Exception, match=timed_out(ids, "an item")):
            waiting.next(queue.Queue(), "an item", timeout=0.05)
        waiting.parked_in("wait", "threading.py", "the gate")
    finally:
        gate.set()
    assert waiting.result("the gate") is True
    with pytest.raises(pytest.fail.Exception, match=rf"^{ids}: wait\(\) returned before the gate$"):
        waiting.parked_in("wait", "threading.py", "the gate")


# ------------------------------------------------------------------- reaper


def test_reaper_stops_a_leaked_multiprocessing_child_and_spares_older_ones():
    # One Event pair per child: an Event whose waiter was killed must not be set again (it would block).
    ctx = multiprocessing.get_context("fork")
    started, gate = ctx.Event(), ctx.Event()
    older = ctx.Process(target=probes.announce_and_wait, args=(started, gate), name="older")
    older.start()
    testing.wait_event(started, "the older child to start")
    before = reaper.snapshot()
    started_leaky, never = ctx.Event(), ctx.Event()
    child = ctx.Process(target=probes.announce_and_wait, args=(started_leaky, never), name="leaky")
    child.start()
    try:
        testing.wait_event(started_leaky, "the child to start")
        leaks = reaper.clean_up(before)
        assert leaks == [f"process {child.pid} (leaky, alive)"]
        assert child.exitcode == -9 and older.is_alive()
    finally:
        gate.set()
        testing.join(older, "the older child to end")
    assert older.exitcode == 0


def test_reaper_stops_a_leaked_program_and_reaps_a_zombie():
    before = reaper.snapshot()
    running = subprocess.Popen(PAUSE)
    ended = subprocess.Popen([sys.executable, "-c", ""])
    testing.until(
        lambda: psutil.Process(ended.pid).status() == psutil.STATUS_ZOMBIE, "the program to end unreaped"
    )
    leaks = reaper.clean_up(before)
    assert f"process {ended.pid} (a zombie: exited but never reaped)" in leaks, leaks
    assert any(leak.startswith(f"process {running.pid} (") for leak in leaks), leaks
    assert len(leaks) == 2, leaks
    assert not psutil.pid_exists(running.pid) and not psutil.pid_exists(ended.pid)
    running.wait(0)  # already reaped: Popen takes that as an exit
    ended.wait(0)


def test_reaper_names_a_non_daemon_thread_still_running(monkeypatch):
    monkeypatch.setattr(reaper, "THREAD_GRACE", 0.05)
    gate = threading.Event()
    before = reaper.snapshot()
    stuck = threading.Thread(target=gate.wait, args=(testing.WAIT,), name="stuck")
    daemon = threading.Thread(target=gate.wait, args=(testing.WAIT,), daemon=True)
    finished = threading.Thread(target=lambda: None)
    for thread in (stuck, daemon, finished):
        thread.start()
    try:
        assert reaper.clean_up(before) == ["thread 'stuck' (non-daemon, still running)"]
    finally:
        gate.set()
        for thread in (stuck, daemon, finished):
            testing.join(thread, "the thread")
    # A thread that ends within the grace period is no leak.
    monkeypatch.setattr(reaper, "THREAD_GRACE", testing.WAIT)
    before = reaper.snapshot()
    ending = threading.Thread(target=threading.Event().wait, args=(0.1,), name="ending")
    ending.start()
    assert reaper.clean_up(before) == []
    assert not ending.is_alive()


def test_reaper_skips_a_process_that_is_gone(monkeypatch):
    program = subprocess.Popen([sys.executable, "-c", ""])
    gone = psutil.Process(program.pid)
    program.wait(testing.WAIT)
    assert reaper._describe(gone) == f"process {program.pid}"
    before = reaper.snapshot()
    monkeypatch.setattr(reaper, "descendants", lambda: {program.pid: gone})
    assert reaper.clean_up(before) == []
    assert reaper._reap(os.getppid()) is None  # not our child: its own parent reaps it


def test_descendants_of_a_process_psutil_cannot_read(monkeypatch):
    def unreadable(*args: object) -> psutil.Process:
        raise psutil.AccessDenied(os.getpid())

    monkeypatch.setattr(psutil, "Process", unreadable)
    assert reaper.descendants() == {}


# ------------------------------------------------------------------- probes


def test_probe_reports_an_error_and_ends_the_child():
    lines: queue.Queue = queue.Queue()

    def run() -> None:
        raise ValueError("no manager")

    with pytest.raises(SystemExit) as ended:
        distributed_probe._report_errors(lines, run)
    assert ended.value.code == 1
    assert lines.get_nowait() == ("error", "ValueError: no manager")


def test_lock_probe_sees_a_free_lock_and_a_held_one():
    lock = threading.RLock()
    unlocked = threading.Event()
    calls = multiprocessing.get_context("fork").Value("i", 0)
    with lock:
        lock_probe.check_value_lock(lock, unlocked, calls)
    assert not unlocked.is_set()
    lock_probe.check_value_lock(lock, unlocked, calls)
    assert unlocked.is_set() and calls.value == 2


def test_pool_probe_without_its_initializer_or_with_a_closed_gate(monkeypatch, tmp_path):
    monkeypatch.setattr(pool_probe, "_gates", None)
    with pytest.raises(RuntimeError, match="without initializer=init_gates"):
        pool_probe.gated_task(0)
    monkeypatch.setattr(pool_probe, "_reports", None)
    monkeypatch.setattr(pool_probe, "GATE_LIMIT", 0.01)
    reports: queue.Queue = queue.Queue()
    pool_probe.init_gates([threading.Semaphore(0)], reports)
    with pytest.raises(TimeoutError, match="gate 0 was never opened"):
        pool_probe.gated_task(0)
    assert reports.get_nowait() == ("start", 0, os.getpid())
    monkeypatch.setattr(sys, "stdout", sys.stdout)
    pool_probe.init_stdout(str(tmp_path / "out.txt"))
    print("buffered")
    assert (tmp_path / "out.txt").read_text() == ""
    sys.stdout.close()
    assert (tmp_path / "out.txt").read_text() == "buffered\n"


def test_queue_probe_reader_takes_one_item_then_waits_at_its_gate():
    items, got = queue.Queue(), queue.Queue()
    items.put("first")
    items.put("second")
    gate = threading.Semaphore(1)  # already open: the reader passes it at once
    queue_probe.read_one_then_wait(items, got, gate)
    assert got.get_nowait() == "first" and items.get_nowait() == "second"
    queue_probe.put_big(items, 10)
    assert items.get_nowait() == b"x" * 10
