"""The suite survives hostile learner code (tests/hostile/*.py).

Each case patches one reference module in a copy of ``solutions/``, runs the
fork and process topics on it in a pytest process of its own session, and
checks: the run finishes, exactly the expected spec IDs fail with a clear
message, every other ID passes, the report stays small, and no process of the
run is left afterwards (looked up by session ID, before anything kills them).

As root on Linux, each run also gets a /dev/shm of its own (a tmpfs in a
private mount namespace, made with ``unshare``), listed when pytest has ended:
any POSIX semaphore or shared memory the run left there fails the case.
"""

from __future__ import annotations

import contextlib
import json
import os
import runpy
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from kata import spec as specs
from kata import testing

HOSTILE = Path(__file__).parent / "hostile"
TOPICS = ("fork", "process")

pytestmark = [
    pytest.mark.hostile,
    pytest.mark.skipif(not hasattr(os, "fork"), reason="the corpus uses os.fork (POSIX)"),
    pytest.mark.timeout(150),
]

FORK_ALL = {f"FORK-{n}" for n in range(1, 8)}

#: case -> (spec IDs that must fail, words one of which each failure message must contain)
CASES: dict[str, tuple[set[str], tuple[str, ...]]] = {
    "hang": ({"PROC-6"}, ("Timeout",)),
    "hang_spawn": ({"PROC-6"}, ("Timeout",)),
    "busy": ({"FORK-4", "FORK-5", "FORK-7"}, ("Timeout", "timed out")),
    "deadlock": ({"PROC-7"}, ("Timeout",)),
    "fork_returns": ({"FORK-6", "FORK-7"}, ("returned into the caller", "3 lines", "child PID")),
    "sys_exit": ({"FORK-4", "FORK-5"}, ("sys.exit",)),
    "os_exit": ({"PROC-1", "PROC-3", "PROC-4", "PROC-5"}, ("os._exit",)),
    "orphan": (FORK_ALL - {"FORK-4"}, ("left these running", "timed out", "Timeout")),
    "thread": ({"PROC-1", "PROC-3", "PROC-4", "PROC-5"}, ("thread 'stuck'",)),
    "megabytes": ({"PROC-2"}, ("Parent process", "expected", "got")),
    "child_raises": ({"PROC-1", "PROC-3", "PROC-4"}, ("exitcode was 1", "timed out")),
    "keyboard": ({"PROC-6"}, ("KeyboardInterrupt",)),
    "import_error": (FORK_ALL, ("fork.py, line", "SyntaxError")),
}


#: Wraps a run in a private /dev/shm and lists what is left in it ($1: the list file).
SHM_WRAPPER = (
    'mount -t tmpfs kata-shm /dev/shm || exit 97; "${@:2}"; code=$?; ls -A /dev/shm > "$1"; exit $code'
)


def private_shm() -> bool:
    """Can runs get a /dev/shm of their own (root, Linux, unshare)?"""
    return sys.platform == "linux" and os.geteuid() == 0 and shutil.which("unshare") is not None


def make_package(case: str, where: Path) -> str:
    """A copy of the reference with the case's patch applied; returns the package name."""
    name = f"hostile_{case}"
    shutil.copytree(specs.ROOT / "solutions", where / name, ignore=shutil.ignore_patterns("__pycache__"))
    patch = runpy.run_path(str(HOSTILE / f"{case}.py"))
    target = where / name / f"{patch['MODULE']}.py"
    source = target.read_text()
    assert patch["OLD"] in source, f"{case}.py no longer matches solutions/{patch['MODULE']}.py"
    target.write_text(source.replace(patch["OLD"], patch["NEW"]) + patch.get("APPEND", ""))
    return name


def session_members(sid: int) -> list[psutil.Process]:
    """The live (not zombie) processes of session ``sid``."""
    members = []
    for proc in psutil.process_iter(["status"]):
        try:
            if os.getsid(proc.pid) == sid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                members.append(proc)
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return members


def reap_orphans() -> None:
    """Reap the run's orphans that ended as our zombies (this process is a subreaper)."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_solution_is_contained(case, tmp_path):
    expected, words = CASES[case]
    package = make_package(case, tmp_path)
    method = runpy.run_path(str(HOSTILE / f"{case}.py")).get("METHOD", "fork")
    report, shm_list = tmp_path / "report.json", tmp_path / "shm.txt"
    cmd = [
        sys.executable, "-m", "pytest", "-p", "kata.plugin",
        "--rootdir", str(specs.ROOT), "-c", str(specs.ROOT / "pyproject.toml"),
        "-q", "--tb=no", "-rN", "--kata-brief", "-p", "no:cacheprovider",
        "--solutions", package, "--start-method", method, "--timeout", "3",
        "--kata-json", str(report), "-p", "no:benchmark",
        *(str(specs.ROOT / specs.topic_named(t).tests) for t in TOPICS),
    ]  # fmt: skip
    if private_shm():
        cmd = [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "bash",
            "-c",
            SHM_WRAPPER,
            "-",
            str(shm_list),
            *cmd,
        ]
    env = dict(os.environ, KATA_WAIT="2", PYTHONDONTWRITEBYTECODE="1")
    with open(tmp_path / "out.txt", "wb") as out:
        run = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
                               start_new_session=True)  # fmt: skip
        try:
            code = run.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
            pytest.fail(f"{case}: the run did not finish in 120 s")
    # The resource tracker may still be unlinking the run's semaphores: give it a bounded moment.
    with contextlib.suppress(pytest.fail.Exception):
        testing.until(lambda: not session_members(run.pid), "the run's last processes to end", timeout=5)
    left = session_members(run.pid)
    for proc in left:
        proc.kill()
    reap_orphans()
    assert not left, f"{case}: the run left {[p.pid for p in left]} running: {[p.cmdline() for p in left]}"
    if private_shm():
        assert code != 97, f"{case}: could not mount a private /dev/shm"
        shm = shm_list.read_text().split()
        assert not shm, f"{case}: the run left these in /dev/shm: {shm}"

    output = (tmp_path / "out.txt").read_text(errors="replace")
    assert code == 1, f"{case}: exit code {code}, expected 1 (some tests failed)\n{output[-3000:]}"
    assert len(output) < 20_000, f"{case}: the run printed {len(output)} characters"
    data = json.loads(report.read_text())
    failing = {i for i, s in data["specs"].items() if s["status"] == "fail"}
    assert failing == expected, f"{case}: failing IDs {sorted(failing)}, expected {sorted(expected)}"
    wanted = {i for t in TOPICS for i in specs.topic_named(t).ids}
    assert set(data["specs"]) == wanted, "every ID of the topics ran"
    for test in data["tests"]:
        assert len(test["output"]) <= 2100, f"{test['name']}: output not cut ({len(test['output'])})"
        if test["status"] == "fail":
            assert any(w in test["message"] for w in words), f"{test['name']}: {test['message']!r}"
