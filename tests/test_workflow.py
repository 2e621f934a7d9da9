"""The learner workflow, and conformance from both sides.

The suite is right when the reference passes every spec item (under every
start method this session checks) and a fresh ``kata init`` workspace fails
every one of them, each failure reported under that item and carrying a
stub's ``NotImplementedError`` (which names the function to write). An item
that the stubs pass, or fail for another reason (a timeout, a test that never
calls the learner's code), is a bug in its test: the failure here names it.

The spec IDs are read from ``spec/*.md`` at run time, so topics added later are
covered with no change here. ``KATA_REFERENCE_REPORT=FILE`` reuses the JSON
report of a ``kata check --json FILE`` run on the reference instead of running
it again. Every command runs as a real program with a bounded wait.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from kata import cli, plugin, stubs
from kata import spec as specs

#: Bound on one ``kata`` command; the reference run gets the whole suite's time.
COMMAND_LIMIT = 120.0
REFERENCE_LIMIT = 900.0

#: Each test runs a few commands, each bounded; the fixtures' runs count in the first test that uses them.
pytestmark = [pytest.mark.workflow, pytest.mark.timeout(3 * COMMAND_LIMIT)]

#: During the stub run bounded waits end sooner: a stub must fail at once, not by a wait.
STUB_WAIT = "3"


def kata(*args: str, cwd: Path, limit: float = COMMAND_LIMIT, **env: str) -> subprocess.CompletedProcess:
    """Run ``python -m kata *args`` in ``cwd`` and return it finished (text output)."""
    environ = {k: v for k, v in os.environ.items() if k not in ("KATA_SOLUTIONS", "KATA_START_METHOD")}
    environ.update(env)
    before = {p.pid for p in psutil.Process().children()}
    try:
        return subprocess.run(
            [sys.executable, "-m", "kata", *args],
            cwd=cwd,
            env=environ,
            capture_output=True,
            text=True,
            timeout=limit,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"`kata {' '.join(args)}` did not finish in {limit:g} s")
    finally:
        reap_adopted(before)


def reap_adopted(before: set[int]) -> None:
    """Reap what the run's own clean-up killed and this process adopted.

    The plugin makes the test process a child subreaper, so the helpers of the
    inner run (forkserver, resource tracker), killed by ``kata check`` after its
    pytest ended, become this process's children; wait for them here (bounded).
    """
    adopted = [p for p in psutil.Process().children() if p.pid not in before]
    for proc in adopted:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(adopted, timeout=10)


def spec_ids() -> list[str]:
    """Every spec ID of every topic whose test file exists (an untested topic is the traceability test's)."""
    return [i for t in specs.topics() if (specs.ROOT / t.tests).exists() for i in t.ids]


def one_line_error(run: subprocess.CompletedProcess, code: int) -> str:
    """Assert the command failed with ``code`` and one line on stderr, no traceback; return the line."""
    lines = run.stderr.strip().splitlines()
    assert run.returncode == code, f"exit {run.returncode}, expected {code}; stderr: {run.stderr[-2000:]}"
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{run.stderr[-2000:]}"
    assert "Traceback" not in run.stdout + run.stderr
    return lines[0]


def results_of(report: dict[str, Any], spec_id: str) -> list[dict[str, Any]]:
    return [t for t in report["tests"] if spec_id in t["spec"]]


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def methods(pytestconfig: pytest.Config) -> str:
    """The start methods this session checks, passed on to the runs it starts."""
    return ",".join(plugin.selected_methods(pytestconfig.getoption("start_method")))


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with a fresh workspace ``ws/`` made by ``kata init``."""
    home = tmp_path_factory.mktemp("learner")
    run = kata("init", cwd=home)
    assert run.returncode == 0, run.stderr
    return home


@pytest.fixture(scope="module")
def stub_report(home: Path, methods: str) -> dict[str, Any]:
    """``kata check --solutions ws --json`` on the fresh workspace: the report, exit code and time."""
    started = time.monotonic()
    run = kata(
        "check", "--solutions", "ws", "--start-method", methods, "--json", "stubs.json",
        cwd=home, KATA_WAIT=STUB_WAIT,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert (home / "stubs.json").exists(), f"no report (exit {run.returncode}):\n{run.stderr[-3000:]}"
    report = json.loads((home / "stubs.json").read_text(encoding="utf-8"))
    return {"report": report, "returncode": run.returncode, "stdout": run.stdout, "elapsed": elapsed}


@pytest.fixture(scope="module")
def reference_report(tmp_path_factory: pytest.TempPathFactory, methods: str) -> dict[str, Any]:
    """The reference's report: reused from ``KATA_REFERENCE_REPORT``, or made by ``kata check --json``."""
    reuse = os.environ.get("KATA_REFERENCE_REPORT")
    if reuse:
        return json.loads(Path(reuse).read_text(encoding="utf-8"))
    where = tmp_path_factory.mktemp("reference")
    run = kata(
        "check", "--solutions", "solutions", "--start-method", methods, "--json", "ref.json",
        cwd=where, limit=REFERENCE_LIMIT,
    )  # fmt: skip
    assert (where / "ref.json").exists(), f"no report (exit {run.returncode}):\n{run.stderr[-3000:]}"
    return json.loads((where / "ref.json").read_text(encoding="utf-8"))


# ------------------------------------------------------- two-sided conformance


@pytest.mark.timeout(REFERENCE_LIMIT + 60)
def test_reference_passes_every_spec_id_under_every_start_method(reference_report, methods):
    chosen = methods.split(",")
    assert reference_report["solutions"] == "solutions"
    assert reference_report["start_methods"] == chosen
    problems = []
    for spec_id in spec_ids():
        entry = reference_report["specs"].get(spec_id)
        if entry is None:
            problems.append(f"{spec_id}: no test of it ran")
            continue
        by_method = entry["methods"]
        if set(by_method) - {"any"} and set(by_method) - {"any"} != set(chosen):
            problems.append(f"{spec_id}: ran under {sorted(by_method)}, not under every method {chosen}")
        if entry["status"] == "fail":
            failed = [t for t in results_of(reference_report, spec_id) if t["status"] == "fail"]
            detail = "; ".join(f"{t['name']}: {t['message'][:200]}" for t in failed[:3])
            problems.append(f"{spec_id}: fails on the reference ({by_method}): {detail}")
    assert not problems, "the reference does not pass:\n" + "\n".join(problems)


def test_stubs_fail_every_spec_id_with_its_not_implemented_error(stub_report):
    report = stub_report["report"]
    problems = []
    for spec_id in spec_ids():
        entry = report["specs"].get(spec_id)
        if entry is None:
            problems.append(f"{spec_id}: no test of it ran on the stubs")
            continue
        if entry["status"] != "fail":
            problems.append(
                f"{spec_id}: the stubs {entry['status']} it ({entry['methods']}): its tests must call "
                "the learner's functions, whose stubs raise NotImplementedError"
            )
            continue
        # The failure is reported under this ID ("[DIST-2] ...") and carries the stub's
        # NotImplementedError, which names the function to write and the IDs it serves.
        failed = [t for t in results_of(report, spec_id) if t["status"] == "fail"]
        if not any(
            spec_id in t["message"] and "NotImplementedError" in t["message"] + t["output"] for t in failed
        ):
            problems.append(
                f"{spec_id}: no failure of it carries a stub's NotImplementedError (its test must call a "
                f"learner function first); got: {failed[0]['message'][:200]}"
            )
    assert stub_report["returncode"] == 1, f"kata check on the stubs exited {stub_report['returncode']}"
    assert not problems, "spec items the stubs do not fail as they should:\n" + "\n".join(problems)


def test_stubs_fail_fast_by_not_implemented_error_only(stub_report):
    """A stub's test fails at once with ``NotImplementedError``, not by a wait running out."""
    report = stub_report["report"]
    slow = [
        f"{t['name']} [{', '.join(t['spec'])}]: {t['message'][:160]}"
        for t in report["tests"]
        if t["status"] == "fail" and "NotImplementedError" not in t["message"] + t["output"]
    ]
    assert not slow, (
        "tests that fail the stubs by something else than NotImplementedError (call a learner "
        f"function early, or use testing.Background; stub run {stub_report['elapsed']:.1f} s):\n"
        + "\n".join(slow)
    )


def test_stub_summary_is_readable_and_kept_in_the_workspace(stub_report, home):
    out = stub_report["stdout"]
    assert len(out.splitlines()) < 60, f"{len(out.splitlines())} lines of summary:\n{out}"
    assert "first failure: " in out and "expected: " in out and "happened: " in out and "hint: " in out, out
    listing = kata("list", "--solutions", "ws", cwd=home)
    assert listing.returncode == 0, listing.stderr
    marks = {"pass": "pass", "fail": "FAIL", "skip": "skip"}
    for spec_id, entry in stub_report["report"]["specs"].items():
        mark = marks[entry["status"]]
        assert re.search(rf"^\s+{re.escape(spec_id)}\s+{mark}\s", listing.stdout, re.M), (
            f"kata list --solutions ws does not show {spec_id} as {mark}:\n{listing.stdout}"
        )


def test_the_report_is_the_documented_schema(stub_report):
    """Every field the report has is documented in spec/README.md, and every documented field is there."""
    readme = (specs.SPEC_DIR / "README.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `([a-z_.\[\]A-Z]+)` \|", readme, re.M))
    report = stub_report["report"]
    produced = set()
    for key, value in report.items():
        if key == "specs":
            produced |= {f"specs.ID.{k}" for entry in value.values() for k in entry} | {"specs"}
        elif key == "tests":
            produced |= {f"tests[].{k}" for entry in value for k in entry} | {"tests"}
        elif isinstance(value, dict):
            produced |= {f"{key}.{k}" for k in value}
        else:
            produced.add(key)
    assert report["schema"] == "kata-conformance/1"
    assert produced == documented, (
        f"in the report, not documented: {sorted(produced - documented)}; "
        f"documented, not in the report: {sorted(documented - produced)}"
    )


# ------------------------------------------------------------ the workspace


def test_init_makes_stubs_of_every_reference_module_with_a_readme(home):
    for relative in stubs.reference_modules():
        expected, done = stubs.stub_file(relative)
        assert (home / "ws" / relative).read_text(encoding="utf-8") == expected
        for stub in done:
            assert stub.ids, f"solutions/{relative}: {stub.qualname}() names no spec ID in its docstring"
    readme = (home / "ws" / "README.md").read_text(encoding="utf-8")
    assert "kata check --solutions ws" in readme and "KATA_SOLUTIONS=ws" in readme


def test_init_refuses_to_overwrite_unless_forced(tmp_path):
    assert kata("init", "mine", cwd=tmp_path).returncode == 0
    module = tmp_path / "mine" / f"{specs.topics()[0].module}.py"
    module.write_text("# my work\n", encoding="utf-8")
    line = one_line_error(kata("init", "mine", cwd=tmp_path), 2)
    assert "--force" in line, line
    assert module.read_text(encoding="utf-8") == "# my work\n"
    forced = kata("init", "mine", "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    kept = list(module.parent.glob(f"{module.name}.bak-*"))
    assert [k.read_text(encoding="utf-8") for k in kept] == ["# my work\n"], kept
    assert "NotImplementedError" in module.read_text(encoding="utf-8")


def test_reset_restores_the_stub_and_keeps_a_backup(tmp_path):
    topic = specs.topics()[0]
    assert kata("init", cwd=tmp_path).returncode == 0
    module = tmp_path / "ws" / f"{topic.module}.py"
    module.write_text("# half done\n", encoding="utf-8")
    run = kata("reset", topic.name, "--solutions", "ws", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert module.read_text(encoding="utf-8") == stubs.stub_file(Path(module.name))[0]
    kept = list(module.parent.glob(f"{module.name}.bak-*"))
    assert len(kept) == 1 and kept[0].read_text(encoding="utf-8") == "# half done\n", kept
    assert kept[0].name in run.stdout


def test_copying_one_reference_module_passes_exactly_that_topic(tmp_path, methods):
    runnable = [t for t in specs.topics() if (specs.ROOT / t.tests).exists()]
    if len(runnable) < 2:
        pytest.skip("needs two topics with tests")
    done, other = runnable[0], runnable[1]
    assert kata("init", cwd=tmp_path).returncode == 0
    source = (stubs.REFERENCE_DIR / f"{done.module}.py").read_text(encoding="utf-8")
    (tmp_path / "ws" / f"{done.module}.py").write_text(source, encoding="utf-8")
    run = kata(
        "check", done.name, other.name, "--solutions", "ws", "--start-method", methods, "--json", "r.json",
        cwd=tmp_path, KATA_WAIT=STUB_WAIT,
    )  # fmt: skip
    report = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    verdicts = {i: e["status"] for i, e in report["specs"].items()}
    assert {i for i, s in verdicts.items() if s == "fail"} == set(other.ids), verdicts
    assert {i for i, s in verdicts.items() if s != "fail"} == set(done.ids), verdicts
    assert run.returncode == 1


def test_a_syntax_error_is_named_with_file_and_line(tmp_path):
    topic = specs.topics()[0]
    assert kata("init", cwd=tmp_path).returncode == 0
    module = tmp_path / "ws" / f"{topic.module}.py"
    lines = module.read_text(encoding="utf-8").splitlines()
    module.write_text("\n".join([*lines, "def broken(:"]) + "\n", encoding="utf-8")
    run = kata("check", topic.name, "--solutions", "ws", cwd=tmp_path)
    assert run.returncode == 1, run.stdout + run.stderr
    where = f"ws/{module.name}, line {len(lines) + 1}: SyntaxError"
    assert where in run.stdout, run.stdout
    assert "Traceback" not in run.stdout + run.stderr


# ------------------------------------------------------------------ bad input


def test_missing_workspace_says_how_to_make_one(tmp_path):
    for args in (
        ("check", "--solutions", "nope"),
        ("list", "--solutions", "nope"),
        ("reset", specs.topics()[0].name, "--solutions", "nope"),
    ):
        line = one_line_error(kata(*args, cwd=tmp_path), cli.NO_PACKAGE)
        assert "kata init nope" in line, line


def test_unknown_topic_or_id_gets_the_closest_names(tmp_path):
    topic = specs.topics()[0]
    typo = topic.name[:-1] + ("x" if topic.name[-1] != "x" else "y")
    unknown_id = f"{topic.items[0].id.split('-')[0]}-999"
    for args in (
        ("check", typo),
        ("list", typo),
        ("demo", typo),
        ("reset", typo),
        ("hint", typo),
        ("check", unknown_id),
        ("hint", unknown_id),
    ):
        line = one_line_error(kata(*args, cwd=tmp_path), 2)
        want = topic.name if "-" not in args[1] else topic.items[0].id.split("-")[0] + "-"
        assert "did you mean" in line and want in line.split("did you mean", 1)[1], (
            f"kata {' '.join(args)}: {line}"
        )


@pytest.mark.parametrize(
    "args",
    [
        ("check", "--start-method", "bogus"),
        ("check", "--bogus"),
        ("check", "--deadline", "soon"),
        ("init", "1ws"),
        ("init", "json"),
        ("frobnicate",),
        ("hint",),
    ],
    ids=lambda a: " ".join(a),
)
def test_bad_input_is_one_line_and_a_non_zero_exit(tmp_path, args):
    one_line_error(kata(*args, cwd=tmp_path), 2)


def test_watch_without_watchfiles_says_how_to_get_it(tmp_path):
    assert kata("init", cwd=tmp_path).returncode == 0
    code = (
        "import sys; sys.modules['watchfiles'] = None; from kata.cli import main; sys.exit(main(['watch']))"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    line = one_line_error(run, 2)
    assert "pip install" in line and "watch" in line, line


def test_watch_maps_changed_files_to_their_topics(tmp_path):
    topics = [t for t in specs.topics()][:2]
    changed = [tmp_path / f"{t.module}.py" for t in reversed(topics)]
    changed += [tmp_path / "README.md", tmp_path / "__init__.py", tmp_path / "fork.py.bak-1"]
    assert cli.changed_topics(changed, tmp_path) == topics
