"""Soak: run the suite many times in a row and count the failures per test.

Run from the repository root::

    python benchmarks/soak.py --runs 200                 # quiet machine
    python benchmarks/soak.py --runs 200 --busy 2        # both cores kept busy
    python benchmarks/soak.py --runs 50 -- tests/test_lock.py --start-method spawn

Everything after ``--`` goes to pytest (default: the matrix suite under all
start methods on two pytest-xdist workers, ``-m "not hostile and not
workflow" -n 2``). pytest runs with only the kata's plugins, as ``kata
check`` runs it. ``--busy N`` keeps N extra processes spinning on the CPU for
the whole soak. Each run's JUnit report is read; the summary lists every test
that failed at least once, with its count and its first message, then every
test skipped in some runs but not all (a verdict that depends on the load:
the GIL items that need a free core), and the exit code is 1 if any run
failed (or ran no test).
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from kata.cli import NO_AUTOLOAD, PLUGINS, XDIST_PLUGIN

ROOT = Path(__file__).resolve().parent.parent
BUSY = "while True: pass"


def _failures(junit: Path) -> tuple[int, dict[str, str], set[str]]:
    """(tests run, {test id: first line of its failure}, {skipped test ids}) from one JUnit report."""
    if not junit.exists():
        return 0, {}, set()
    tests, failed, skipped = 0, {}, set()
    for case in ET.parse(junit).getroot().iter("testcase"):
        tests += 1
        if case.find("skipped") is not None:
            skipped.add(f"{case.get('classname', '')}::{case.get('name', '')}")
        for tag in ("failure", "error"):
            node = case.find(tag)
            if node is not None:
                name = f"{case.get('classname', '')}::{case.get('name', '')}"
                failed[name] = (
                    (node.get("message") or "").splitlines()[0][:160] if node.get("message") else tag
                )
    return tests, failed, skipped


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    extra: list[str] = []
    if "--" in argv:
        at = argv.index("--")
        argv, extra = argv[:at], argv[at + 1 :]
    parser = argparse.ArgumentParser(description="Run the suite N times; failures per test.")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--busy", type=int, default=0, help="extra CPU-bound processes during the soak")
    args = parser.parse_args(argv)
    pytest_args = extra or ["-m", "not hostile and not workflow", "-n", "2"]
    env = dict(os.environ, **NO_AUTOLOAD)

    busy = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(args.busy)]
    counts: collections.Counter[str] = collections.Counter()
    skips: collections.Counter[str] = collections.Counter()
    messages: dict[str, str] = {}
    bad_runs, walls = 0, []
    try:
        with tempfile.TemporaryDirectory(prefix="kata-soak-") as tmp:
            for run in range(1, args.runs + 1):
                junit = Path(tmp) / f"run{run}.xml"
                cmd = [
                    sys.executable,
                    "-m",
                    "pytest",
                    "-q",
                    "-p",
                    "no:cacheprovider",
                    *PLUGINS,
                    *XDIST_PLUGIN,
                    "--junitxml",
                    str(junit),
                ]
                start = time.perf_counter()
                code = subprocess.run(
                    [*cmd, *pytest_args],
                    cwd=ROOT,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                ).returncode
                walls.append(time.perf_counter() - start)
                tests, failed, skipped = _failures(junit)
                skips.update(skipped)
                if code != 0 or not tests:
                    bad_runs += 1
                for name, message in failed.items():
                    counts[name] += 1
                    messages.setdefault(name, message)
                mark = "." if code == 0 and tests else "F"
                print(mark, end="" if run % 50 else f" {run}\n", flush=True)
    finally:
        for proc in busy:
            proc.kill()
            proc.wait()

    print(f"\n{args.runs} runs ({args.busy} busy processes), {bad_runs} failed; ", end="")
    median = sorted(walls)[len(walls) // 2]
    print(f"wall per run: min {min(walls):.1f} s, median {median:.1f} s, max {max(walls):.1f} s")
    for name, n in counts.most_common():
        print(f"  {n:4d}x {name}\n        {messages[name]}")
    varied = {name: n for name, n in skips.items() if n < args.runs}
    for name, n in sorted(varied.items()):
        print(f"  skipped in {n} of {args.runs} runs: {name}")
    return 1 if bad_runs else 0


if __name__ == "__main__":
    sys.exit(main())
