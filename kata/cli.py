"""The ``kata`` command: check, hint, list, demo.

``kata check`` is the main job: it runs the suite on a solutions package (the
reference by default) in a pytest process of its own session, prints the
conformance table and exits 0 only when every selected spec item passes.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Sequence

from kata import spec as specs

#: Whole-run deadline of ``kata check`` in seconds (``--deadline`` changes it).
DEADLINE = 1800.0


def _words_to_tests(words: Sequence[str]) -> tuple[list[str], list[str]]:
    """Map topic names / spec IDs to (test files, --spec words); exit 2 on an unknown one."""
    topics, known = specs.topics(), specs.items()
    files: list[str] = []
    for word in words:
        topic = specs.topic_named(word)
        if topic is None and word.upper() in known:
            topic = specs.topic_named(known[word.upper()].topic)
        if topic is None:
            names = [t.name for t in topics] + list(known)
            raise SystemExit(_error(f"unknown topic or spec ID {word!r}{specs.closest(word, names)}"))
        path = str(specs.ROOT / topic.tests)
        if path not in files:
            files.append(path)
    return files, list(words)


def _error(message: str) -> int:
    print(f"kata: {message}", file=sys.stderr)
    return 2


def pytest_command(args: argparse.Namespace) -> list[str]:
    files, words = _words_to_tests(args.targets)
    cmd = [
        sys.executable, "-m", "pytest",
        "-p", "kata.plugin",
        "--rootdir", str(specs.ROOT),
        "-c", str(specs.ROOT / "pyproject.toml"),
        "-q", "--no-header", "--tb=no", "-rN", "--kata-brief",
        "-p", "no:cacheprovider",
        "--solutions", args.solutions,
        "--start-method", args.start_method,
    ]  # fmt: skip
    if words:
        cmd += ["--spec", ",".join(words)]
    if args.json:
        cmd += ["--kata-json", os.path.abspath(args.json)]
    if args.junitxml:
        cmd += ["--junitxml", os.path.abspath(args.junitxml)]
    if args.exitfirst:
        cmd.append("-x")
    if args.workers and args.workers != "0":
        cmd += ["-n", args.workers]
    if args.timeout:
        cmd += ["--timeout", str(args.timeout)]
    return cmd + (files or [str(specs.TESTS_DIR)])


def run_contained(cmd: list[str], deadline: float) -> int:
    """Run ``cmd`` in a new session; kill its whole process group when it ends or overruns."""
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    posix = os.name == "posix"
    proc = subprocess.Popen(cmd, start_new_session=posix, env=env)
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


def cmd_check(args: argparse.Namespace) -> int:
    code = run_contained(pytest_command(args), args.deadline)
    if code == 5:
        return _error("no test was selected")
    return code


def cmd_hint(args: argparse.Namespace) -> int:
    known = specs.items()
    spec_id = args.id.upper()
    if spec_id not in known:
        return _error(f"unknown spec ID {args.id!r}{specs.closest(spec_id, list(known))}")
    item = known[spec_id]
    print(f"{item.id} — {item.title}  (topic {item.topic})")
    print(item.hint or "(no hint)")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    for topic in specs.topics():
        if args.topic and args.topic not in (topic.name, topic.module):
            continue
        print(f"{topic.name:<14} {topic.title}   ({len(topic.items)} items, solutions/{topic.module}.py)")
        for item in topic.items:
            print(f"  {item.id:<10} {item.title}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    topic = specs.topic_named(args.topic)
    if topic is None:
        names = [t.name for t in specs.topics()]
        return _error(f"unknown topic {args.topic!r}{specs.closest(args.topic, names)}")
    return subprocess.call([sys.executable, "-m", f"{args.solutions}.{topic.module}", *args.rest])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kata", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    check = sub.add_parser("check", help="run the suite and print the conformance table")
    check.add_argument("targets", nargs="*", metavar="TOPIC|ID", help="topics or spec IDs (default: all)")
    check.add_argument(
        "--solutions",
        default=os.environ.get("KATA_SOLUTIONS", "solutions"),
        metavar="PKG",
        help="package under test (default: the reference, 'solutions')",
    )
    check.add_argument(
        "--start-method",
        default=os.environ.get("KATA_START_METHOD", "all"),
        metavar="M",
        help="fork, forkserver, spawn, a comma list, or all",
    )
    check.add_argument("--json", metavar="FILE", help="write the JSON conformance report")
    check.add_argument("--junitxml", metavar="FILE", help="write a JUnit XML report")
    check.add_argument("-x", "--exitfirst", action="store_true", help="stop at the first failure")
    check.add_argument(
        "-n",
        "--workers",
        default="0",
        metavar="N",
        help="pytest-xdist workers (a number or auto; default 0: one process)",
    )
    check.add_argument("--timeout", type=float, help="per-test limit in seconds")
    check.add_argument("--deadline", type=float, default=DEADLINE, help="limit for the whole run")
    check.set_defaults(func=cmd_check)

    hint = sub.add_parser("hint", help="print a spec item's hint")
    hint.add_argument("id", metavar="ID")
    hint.set_defaults(func=cmd_hint)

    lst = sub.add_parser("list", help="list topics and spec items")
    lst.add_argument("topic", nargs="?")
    lst.set_defaults(func=cmd_list)

    demo = sub.add_parser("demo", help="run a topic's demo (the note's transcript)")
    demo.add_argument("topic")
    demo.add_argument("rest", nargs=argparse.REMAINDER, help="arguments for the demo")
    demo.add_argument("--solutions", default="solutions", metavar="PKG")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else _error(exc.code)
