"""The ``kata`` command: init, check, hint, list, watch, reset, demo.

``kata check`` is the main job: it runs the suite on a solutions package (the
reference by default) in a pytest process of its own session, prints the
conformance table and exits 0 only when every selected spec item passes.

A learner works in a workspace made by ``kata init ws``: the reference with
every public function body replaced by ``raise NotImplementedError("<ID>: ...")``.
``--solutions ws`` (or ``KATA_SOLUTIONS=ws``) points every command at it; the
value is a package name importable from the current directory, or a path to
the package's directory (``--solutions ../ws``).

Exit status: 0 every selected spec item passed (or the command did its job);
1 some failed; 2 bad input (unknown topic, ID or option; a workspace that
exists); 3 the run passed its deadline, or an internal error; 4 the solutions
package is missing or does not import; 130 interrupted. Errors are one line
on stderr, never a traceback (``KATA_DEBUG=1`` shows one for internal errors).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from kata import spec as specs
from kata import stubs

#: The pytest plugins a kata run loads, and all it loads (``NO_AUTOLOAD``): a plugin
#: installed beside pytest could reorder, rerun or slow the tests. ``benchmarks/`` uses them too.
PLUGINS = ["-p", "kata.plugin", "-p", "pytest_timeout"]
#: Added when the run has pytest-xdist workers.
XDIST_PLUGIN = ["-p", "xdist.plugin"]
#: The environment that keeps pytest from loading the plugins installed beside it.
NO_AUTOLOAD = {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}

#: Whole-run deadline of ``kata check`` in seconds (``--deadline`` changes it).
DEADLINE = 1800.0

#: Exit status when the solutions package cannot be found or imported (as pytest's usage error).
NO_PACKAGE = 4

#: Files kept in a workspace's ``.kata/`` directory by ``kata check``.
LAST_REPORT = "last.json"
STATUS = "status.json"


class KataError(Exception):
    """A problem with the learner's input: printed as one line, exit ``code``."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``kata check: unrecognized arguments: --x (see kata check --help)``."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def _error(message: str) -> int:
    print(f"kata: {message}", file=sys.stderr)
    return 2


# ----------------------------------------------------------------- packages


def locate(value: str) -> tuple[str, Path]:
    """``--solutions`` to (package name, directory to run from).

    A plain name (``ws``, ``solutions``) is imported from the current
    directory; a value with a path separator (``../ws``, ``/tmp/k/ws/``) names
    the package's directory, and the run happens in its parent.
    """
    if "/" in value or os.sep in value or value in (".", ".."):
        path = Path(value).expanduser().resolve()
        return path.name, path.parent
    return value, Path.cwd()


def package_dir(package: str, cwd: Path) -> Path:
    """The directory of ``package`` as seen from ``cwd``, found without importing it.

    :class:`KataError` (exit 4) when there is none, saying how to make one.
    """
    top, *rest = package.split(".")
    if not all(part.isidentifier() for part in package.split(".")):
        raise KataError(f"{package!r} is not a package name (or a path to one, like ./ws)", NO_PACKAGE)
    sys.path.insert(0, str(cwd))
    try:
        found = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        found = None
    finally:
        sys.path.remove(str(cwd))
    locations = list(found.submodule_search_locations or []) if found else []
    if not locations:
        where = "" if cwd == Path.cwd() else f" in {cwd}"
        raise KataError(
            f"no solutions package {package!r}{where}: make your workspace with `kata init {top}`"
            f" (run kata where {top}/ is, or give its path: --solutions path/to/{top})",
            NO_PACKAGE,
        )
    return Path(locations[0]).joinpath(*rest)


def is_reference(path: Path) -> bool:
    return path.resolve() == stubs.REFERENCE_DIR.resolve()


def state_dir(path: Path) -> Path | None:
    """Where ``kata check`` keeps a workspace's last report (None for the reference)."""
    if is_reference(path) or not os.access(path, os.W_OK):
        return None
    return path / stubs.STATE_DIR


def _topic_or_module(word: str) -> specs.Topic | None:
    return specs.topic_named(word) or specs.topic_named(word.lower())


def _unknown(word: str, what: str = "topic or spec ID", ids: bool = True) -> KataError:
    names = [t.name for t in specs.topics()] + (list(specs.items()) if ids else [])
    hint = specs.closest(word, names) or specs.closest(word.upper(), names)
    return KataError(f"unknown {what} {word!r}{hint} (kata list shows them all)")


# -------------------------------------------------------------------- check


def _words_to_tests(words: Sequence[str]) -> tuple[list[str], list[str]]:
    """Map topic names / spec IDs to (test files, --spec words); :class:`KataError` on an unknown one."""
    known = specs.items()
    files: list[str] = []
    chosen: list[str] = []
    for word in words:
        topic = _topic_or_module(word)
        if topic is None and word.upper() in known:
            topic = specs.topic_named(known[word.upper()].topic)
            word = word.upper()
        if topic is None:
            raise _unknown(word)
        path = str(specs.ROOT / topic.tests)
        if path not in files:
            files.append(path)
        chosen.append(word if word.upper() in known else topic.name)
    return files, chosen


def pytest_command(
    args: argparse.Namespace, package: str | None = None, json_path: str | None = None
) -> list[str]:
    """The pytest command line that ``kata check`` runs for these arguments."""
    files, words = _words_to_tests(args.targets)
    cmd = [
        sys.executable, "-m", "pytest", *PLUGINS,
        "--rootdir", str(specs.ROOT),
        "-c", str(specs.ROOT / "pyproject.toml"),
        "-q", "--no-header", "--tb=no", "-rN", "--disable-warnings",
        "-p", "no:cacheprovider",
        "--solutions", package or args.solutions,
        "--start-method", args.start_method,
    ]  # fmt: skip
    if not getattr(args, "table", False):
        cmd.append("--kata-brief")  # per-topic lines and the first failure, not the full table
    if words:
        cmd += ["--spec", ",".join(words)]
    json_path = json_path or args.json
    if json_path:
        cmd += ["--kata-json", os.path.abspath(json_path)]
    if args.junitxml:
        cmd += ["--junitxml", os.path.abspath(args.junitxml)]
    if args.exitfirst:
        cmd.append("-x")
    files = files or topic_test_files()
    workers = workers_for(args.workers, len(files))
    if workers != "0":
        cmd += [*XDIST_PLUGIN, "-n", workers]
    if args.timeout:
        cmd += ["--timeout", str(args.timeout)]
    return cmd + files


def workers_for(asked: str, test_files: int) -> str:
    """The ``-n`` for pytest-xdist: ``asked``, where ``auto`` (the default) means 2 when it pays.

    Two workers when the run covers more than one topic and this process
    may use two CPUs or more; one process (``0``) otherwise: a single topic
    finishes before two workers would have started. The verdicts are the
    same either way (``benchmarks/bench.py`` compares them).
    """
    if asked != "auto":
        return asked
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return "2" if test_files > 1 and cpus >= 2 else "0"


def topic_test_files() -> list[str]:
    """Every topic's test file that exists, in spec order (not the tooling's own tests)."""
    paths = [specs.ROOT / topic.tests for topic in specs.topics()]
    return list(dict.fromkeys(str(p) for p in paths if p.exists()))


def run_contained(
    cmd: list[str], deadline: float, cwd: Path | None = None, package: str | None = None
) -> int:
    """Run ``cmd`` in a new session (in ``cwd``); kill its whole process group when it ends or overruns.

    pytest runs with ``PLUGINS`` only (``NO_AUTOLOAD``): a plugin that
    reorders, reruns or times tests differently would change the verdicts, and
    some cost half a second to import.
    """
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", **NO_AUTOLOAD)
    if package:
        env["KATA_SOLUTIONS"] = package  # the name as seen from cwd, for programs the tests start
    posix = os.name == "posix"
    proc = subprocess.Popen(cmd, start_new_session=posix, env=env, cwd=cwd)
    try:
        return proc.wait(timeout=deadline)
    except subprocess.TimeoutExpired:
        print(f"kata: the run passed its deadline of {deadline:g} s and was stopped", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print("kata: interrupted", file=sys.stderr)
        return 130
    finally:
        if posix:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)  # whatever the run left behind
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def record_status(state: Path, report_path: Path) -> None:
    """Keep the run's report as ``.kata/last.json`` and merge its verdicts into ``.kata/status.json``.

    ``status.json``: ``{"schema": "kata-status/1", "specs": {ID: {"status", "checked"}}}``,
    ``checked`` in seconds since the epoch; each run updates only the IDs it ran.
    """
    try:
        report = json.loads(report_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    state.mkdir(exist_ok=True)
    last = state / LAST_REPORT
    if report_path.resolve() != last.resolve():
        shutil.copyfile(report_path, last)
    status = read_status(state)
    now = time.time()
    for spec_id, entry in report.get("specs", {}).items():
        status[spec_id] = {"status": entry.get("status"), "checked": now}
    text = json.dumps({"schema": "kata-status/1", "specs": status}, indent=1, sort_keys=True)
    (state / STATUS).write_text(text + "\n", encoding="utf-8")


def read_status(state: Path | None) -> dict[str, dict[str, Any]]:
    """The verdict per spec ID recorded in a workspace (empty when none)."""
    if state is None:
        return {}
    try:
        data = json.loads((state / STATUS).read_text(encoding="utf-8"))
        return dict(data.get("specs", {}))
    except (OSError, ValueError, AttributeError):
        return {}


def _check_methods(value: str) -> None:
    """:class:`KataError` for a start method that is unknown or missing here (the plugin's own check)."""
    import pytest

    from kata.plugin import selected_methods

    try:
        selected_methods(value)
    except pytest.UsageError as exc:
        raise KataError(str(exc).removeprefix("kata: ")) from None


def cmd_check(args: argparse.Namespace) -> int:
    package, cwd = locate(args.solutions)
    path = package_dir(package, cwd)
    state = state_dir(path)
    cmd = pytest_command(args, package)  # checks the targets before anything runs
    _check_methods(args.start_method)
    json_path = Path(args.json).resolve() if args.json else None
    if state is not None and json_path is None:
        state.mkdir(exist_ok=True)
        json_path = state / LAST_REPORT
    if json_path is not None:
        with contextlib.suppress(FileNotFoundError):
            json_path.unlink()
        cmd = pytest_command(args, package, str(json_path))
    code = run_contained(cmd, args.deadline, cwd, package)
    if state is not None and json_path is not None and json_path.exists():
        record_status(state, json_path)
    if code == 5:
        return _error("no test was selected")
    return code


# ------------------------------------------------------------- the others


def cmd_init(args: argparse.Namespace) -> int:
    path = Path(args.dir)
    try:
        made = stubs.make_workspace(path, force=args.force)
    except stubs.WorkspaceError as exc:
        raise KataError(str(exc)) from None
    except OSError as exc:
        raise KataError(f"cannot write {path}: {exc.strerror or exc}") from None
    functions = sum(len(done) for done in made.stubbed.values())
    print(
        f"kata init: {path}/ is your workspace: {len(made.stubbed)} modules, {functions} functions to write"
    )
    width = max((len(m) for m in made.stubbed), default=0) + 3
    for module, done in sorted(made.stubbed.items()):
        if done:
            ids = sorted(
                {i for d in done for i in d.ids}, key=lambda i: (i.split("-")[0], int(i.split("-")[1]))
            )
            shown = f"{ids[0]} … {ids[-1]}" if len(ids) > 1 else "".join(ids)
            print(f"  {path}/{module + '.py':<{width}} {len(done):>2} functions  {shown}")
    for skipped in made.skipped:
        print(f"  (skipped solutions/{skipped}: the reference module does not parse)")
    for kept in made.backups:
        print(f"  your old {kept.name.split('.bak-')[0]} is kept as {kept}")
    print(
        f"next: kata check --solutions {args.dir} fork   (or export KATA_SOLUTIONS={args.dir}; "
        f"run from the directory that holds {path.name}/)\n      more in {path}/README.md"
    )
    return 0


def cmd_hint(args: argparse.Namespace) -> int:
    known = specs.items()
    spec_id = args.id.upper()
    topic = _topic_or_module(args.id) if spec_id not in known else None
    if topic is not None:
        for item in topic.items:
            print(
                f"{item.id} — {item.title}\n  {(item.hint or '(no hint)').replace(chr(10), chr(10) + '  ')}"
            )
        return 0
    if spec_id not in known:
        raise _unknown(args.id)
    item = known[spec_id]
    print(f"{item.id} — {item.title}  (topic {item.topic})")
    print(item.hint or "(no hint)")
    return 0


def _mark(status: str | None) -> str:
    return {"pass": "pass", "fail": "FAIL", "skip": "skip"}.get(status or "", "·")


def cmd_list(args: argparse.Namespace) -> int:
    topics = specs.topics()
    if args.topic:
        topic = _topic_or_module(args.topic)
        if topic is None:
            raise _unknown(args.topic, "topic", ids=False)
        topics = (topic,)
    status: dict[str, dict[str, Any]] = {}
    path: Path | None = None
    if args.solutions:
        package, cwd = locate(args.solutions)
        path = package_dir(package, cwd)
        status = read_status(state_dir(path))
    for topic in topics:
        line = f"{topic.name:<14} {topic.title}   ({len(topic.items)} items, {topic.module}.py)"
        if status:
            passed = sum(status.get(i, {}).get("status") == "pass" for i in topic.ids)
            line += f"  {passed}/{len(topic.items)} pass"
            module = path / f"{topic.module}.py" if path else None
            checked = [status[i].get("checked") or 0 for i in topic.ids if i in status]
            if module and module.exists() and checked and module.stat().st_mtime > min(checked):
                line += " (file changed since)"
        print(line)
        for item in topic.items:
            mark = f"{_mark(status.get(item.id, {}).get('status')):<5} " if status else ""
            print(f"  {item.id:<10} {mark}{item.title}")
    if path is not None and not status:
        print(f"(no check recorded in {path} yet: kata check --solutions {args.solutions})")
    elif status:
        print(f"(from the last kata check of each item in {path}; · = not checked yet)")
    return 0


def cmd_reset(args: argparse.Namespace) -> int:
    topic = _topic_or_module(args.topic)
    module = topic.module if topic else args.topic
    if topic is None and not (stubs.REFERENCE_DIR / f"{module}.py").exists():
        raise _unknown(args.topic, "topic", ids=False)
    package, cwd = locate(args.solutions)
    path = package_dir(package, cwd)
    if is_reference(path):
        raise KataError("kata reset works on a workspace, not on the reference (--solutions ws)")
    try:
        target, kept = stubs.reset_module(path, module)
    except stubs.WorkspaceError as exc:
        raise KataError(str(exc)) from None
    shown = os.path.relpath(target)
    if kept is None:
        print(f"kata reset: {shown} is the stub (it was the stub already, nothing kept)")
    else:
        print(f"kata reset: {shown} is the stub again; your file is kept as {os.path.relpath(kept)}")
    return 0


def changed_topics(paths: Iterable[str | Path], root: Path) -> list[specs.Topic]:
    """The topics whose modules are among ``paths`` (files under the workspace ``root``), in spec order."""
    modules = set()
    for p in paths:
        path = Path(p)
        with contextlib.suppress(ValueError):
            relative = path.resolve().relative_to(root.resolve())
            if relative.suffix == ".py" and len(relative.parts) == 1:
                modules.add(relative.stem)
    return [t for t in specs.topics() if t.module in modules]


def cmd_watch(args: argparse.Namespace) -> int:
    try:
        import watchfiles
    except ImportError:
        raise KataError(
            "watch needs watchfiles, the optional extra `watch`: "
            "pip install 'concurrency-kata[watch]' (or pip install watchfiles)"
        ) from None
    package, cwd = locate(args.solutions)
    path = package_dir(package, cwd)
    print(
        f"kata watch: watching {path}/ — save a topic's module to check that topic; Ctrl-C stops", flush=True
    )
    for changes in watchfiles.watch(path, raise_interrupt=False):
        for topic in changed_topics((p for _, p in changes), path):
            print(f"\n== {topic.module}.py changed: kata check {topic.name} --solutions {args.solutions}")
            check = argparse.Namespace(**{**vars(args), "targets": [topic.name], "json": None})
            if cmd_check(check) == 130:
                return 130
        print("kata watch: waiting for changes (Ctrl-C stops)", flush=True)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    topic = _topic_or_module(args.topic)
    if topic is None:
        raise _unknown(args.topic, "topic", ids=False)
    package, cwd = locate(args.solutions)
    package_dir(package, cwd)
    try:
        return subprocess.call([sys.executable, "-m", f"{package}.{topic.module}", *args.rest], cwd=cwd)
    except KeyboardInterrupt:
        return 130


# ------------------------------------------------------------------ parser


def _solutions_option(parser: argparse.ArgumentParser, default: str | None) -> None:
    parser.add_argument(
        "--solutions",
        default=os.environ.get("KATA_SOLUTIONS", default),
        metavar="PKG",
        help="package under test: a name importable from here, or a path to its directory "
        f"(default: $KATA_SOLUTIONS, else {default or 'none'})",
    )


def _run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--start-method",
        default=os.environ.get("KATA_START_METHOD", "all"),
        metavar="M",
        help="fork, forkserver, spawn, a comma list, or all (default: $KATA_START_METHOD or all)",
    )
    parser.add_argument("-x", "--exitfirst", action="store_true", help="stop at the first failure")
    parser.add_argument(
        "-n",
        "--workers",
        default=os.environ.get("KATA_WORKERS", "auto"),
        metavar="N",
        help="pytest-xdist workers: a number, 0 for one process, or auto (default: $KATA_WORKERS or auto:"
        " 2 when the run covers several topics and there are 2 CPUs)",
    )
    parser.add_argument("--timeout", type=float, help="per-test limit in seconds (default 20)")
    parser.add_argument(
        "--deadline",
        type=float,
        default=DEADLINE,
        help=f"limit for the whole run in seconds (default {DEADLINE:g})",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="kata", description=__doc__.splitlines()[0].replace("``", ""))
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    init = sub.add_parser("init", help="make a learner workspace: the reference with every function a stub")
    init.add_argument("dir", nargs="?", default="ws", metavar="DIR", help="its directory (default: ws)")
    init.add_argument(
        "--force",
        action="store_true",
        help="overwrite an existing workspace (changed files are kept as .bak)",
    )
    init.set_defaults(func=cmd_init)

    check = sub.add_parser("check", help="run the suite and print the conformance table")
    check.add_argument("targets", nargs="*", metavar="TOPIC|ID", help="topics or spec IDs (default: all)")
    _solutions_option(check, "solutions")
    check.add_argument("--json", metavar="FILE", help="write the JSON conformance report (spec/README.md)")
    check.add_argument("--junitxml", metavar="FILE", help="write a JUnit XML report")
    check.add_argument(
        "--table",
        action="store_true",
        help="print the full table (spec ID x start method) instead of one line per topic",
    )
    _run_options(check)
    check.set_defaults(func=cmd_check)

    hint = sub.add_parser("hint", help="print a spec item's hint (or every hint of a topic)")
    hint.add_argument("id", metavar="ID")
    hint.set_defaults(func=cmd_hint)

    lst = sub.add_parser("list", help="list topics and spec items; with --solutions, which pass")
    lst.add_argument("topic", nargs="?", help="only this topic")
    _solutions_option(lst, None)
    lst.set_defaults(func=cmd_list)

    watch = sub.add_parser("watch", help="re-check a topic whenever its module in the workspace changes")
    _solutions_option(watch, "ws")
    _run_options(watch)
    watch.set_defaults(func=cmd_watch, junitxml=None, json=None)

    reset = sub.add_parser("reset", help="put a topic's stub back in the workspace (your file kept as .bak)")
    reset.add_argument("topic", metavar="TOPIC")
    _solutions_option(reset, "ws")
    reset.set_defaults(func=cmd_reset)

    demo = sub.add_parser("demo", help="run a topic's demo (the note's transcript)")
    demo.add_argument("topic", metavar="TOPIC")
    demo.add_argument("rest", nargs=argparse.REMAINDER, help="arguments for the demo")
    demo.add_argument(
        "--solutions", default="solutions", metavar="PKG", help="package (default: the reference)"
    )
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``kata`` command; return its exit status (see the module docstring)."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KataError as exc:
        print(f"kata: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print("kata: interrupted", file=sys.stderr)
        return 130
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else _error(exc.code)
    except BrokenPipeError:  # `kata list | head`: the reader left; say nothing more
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as exc:
        if os.environ.get("KATA_DEBUG"):
            raise
        print(
            f"kata: internal error: {type(exc).__name__}: {exc} (KATA_DEBUG=1 shows where)", file=sys.stderr
        )
        return 3
