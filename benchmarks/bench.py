"""The kata's benchmark: suite wall time against the process-start floor.

Run from the repository root::

    python benchmarks/bench.py [--methods fork,spawn] [--json FILE] [--skip-all]

What it measures, all in one run (the machine is shared and noisy, so compare
figures of the same run, as ratios):

1. the cost to start and join one process: per start method (a no-op
   ``multiprocessing`` target, median of several after a warm-up), a bare
   ``os.fork()`` + ``waitpid``, and a ``python -c pass`` subprocess;
2. per start method, the wall time of the suite (the matrix: ``-m "not hostile and not workflow"``)
   and the processes it starts (counted by ``benchmarks/count_starts.py``);
3. the floor: those counts x the measured costs, and the ratio suite / floor;
   also pytest's fixed cost (the same command with ``--collect-only``) and the
   ratio with it taken off both sides of nothing: (suite - fixed) / floor;
4. one topic (``kata check fork``) and a stub workspace failing everything
   (``kata init`` then ``kata check --solutions ws``);
5. the suite under all start methods at once, serial and with
   ``pytest-xdist -n 2``, and whether both give the same verdicts;
6. the cost of one new connection to a ``BaseManager`` on loopback, as is and
   with ``TCP_NODELAY`` (spec/11-distributed.md: Nagle + delayed ACK).

Targets (issue "Hardening"): ratio <= 2 per method; all three methods in
under 30 s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kata.cli import NO_AUTOLOAD, PLUGINS, XDIST_PLUGIN

ROOT = Path(__file__).resolve().parent.parent
#: The matrix suite, with only the kata's plugins, as ``kata check`` runs it (the plugins
#: installed beside pytest, e.g. hypothesis's, are not the suite's cost; run with ``NO_AUTOLOAD``).
SUITE = [
    "-m", "pytest", "-q", "-p", "no:cacheprovider", *PLUGINS, *XDIST_PLUGIN,
    "-m", "not hostile and not workflow", "--tb=line",
]  # fmt: skip


def _noop() -> None:
    """The child's target: nothing, so only the start and the join are timed."""


def cost_of_method(method: str, n: int = 8) -> float:
    """Median seconds to start and join one no-op process with ``method`` (after a warm-up)."""
    ctx = multiprocessing.get_context(method)
    times = []
    for i in range(n + 1):
        start = time.perf_counter()
        p = ctx.Process(target=_noop)
        p.start()
        p.join()
        if i:  # the first start also brings up the forkserver / resource tracker
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def cost_of_fork(n: int = 20) -> float:
    """Median seconds for a bare ``os.fork()`` whose child leaves at once, reaped by ``waitpid``."""
    times = []
    for _ in range(n):
        start = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cost_of_subprocess(n: int = 5) -> float:
    """Median seconds to run ``python -c pass`` to its end."""
    times = []
    for _ in range(n):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


_QUEUE: Any = None


def _get_queue() -> Any:
    return _QUEUE


def cost_of_manager_connection(nodelay: bool, n: int = 5) -> float:
    """Median seconds for a new connection to a manager plus one call on a new proxy."""
    import queue
    from multiprocessing import connection
    from multiprocessing.managers import BaseManager

    from kata.probes.distributed import connect_without_nagle

    global _QUEUE
    _QUEUE = queue.Queue()

    class Server(BaseManager):
        pass

    class Client(BaseManager):
        pass

    Server.register("get_queue", callable=_get_queue)
    Client.register("get_queue")
    key = os.urandom(32)
    server = Server(address=("127.0.0.1", 0), authkey=key, ctx=multiprocessing.get_context("fork"))
    server.start()
    original = connection.SocketClient
    times = []
    try:
        if nodelay:
            connect_without_nagle()  # what the distributed tests do
        for _ in range(n):
            start = time.perf_counter()
            client = Client(address=server.address, authkey=key)
            client.connect()
            client.get_queue().put(1)
            times.append(time.perf_counter() - start)
    finally:
        connection.SocketClient = original
        server.shutdown()
    return statistics.median(times)


def _run(args: list[str], env: dict[str, str] | None = None, cwd: Path = ROOT) -> tuple[float, int]:
    """Run a command to its end, output discarded; return (wall seconds, exit code)."""
    start = time.perf_counter()
    code = subprocess.run(
        args, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False
    ).returncode
    return time.perf_counter() - start, code


def run_suite(methods: str, extra: list[str], tmp: Path, tag: str) -> dict[str, Any]:
    """One suite run: wall time, exit code, process starts, spec verdicts."""
    counts_file, report = tmp / f"{tag}.counts", tmp / f"{tag}.json"
    env = dict(os.environ, KATA_COUNT_STARTS=str(counts_file), **NO_AUTOLOAD)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "benchmarks"), env.get("PYTHONPATH")]))
    cmd = [sys.executable, *SUITE, "-p", "count_starts", "--start-method", methods]
    cmd += ["--kata-json", str(report)]
    wall, code = _run([*cmd, *extra], env=env)
    counts: dict[str, int] = {}
    if counts_file.exists():
        for line in counts_file.read_text().splitlines():
            for key, value in json.loads(line).items():
                counts[key] = counts.get(key, 0) + value
    verdicts = {}
    if report.exists():
        data = json.loads(report.read_text())
        verdicts = {i: s.get("methods", {}) | {"status": s["status"]} for i, s in data["specs"].items()}
    return {"wall": wall, "exit": code, "starts": counts, "verdicts": verdicts}


def floor_of(starts: dict[str, int], costs: dict[str, float]) -> float:
    """The least time the suite's process starts can take, one after another.

    ``mp:M`` starts cost what one ``M`` process costs, ``fork`` (a direct
    ``os.fork``) a bare fork, ``subprocess`` a ``python -c pass``.
    """
    price = {"fork": costs["os.fork"], "subprocess": costs["subprocess"]}
    total = 0.0
    for key, n in starts.items():
        total += n * (costs.get(key[3:], 0.0) if key.startswith("mp:") else price[key])
    return total


def _kata(*args: str) -> list[str]:
    return [sys.executable, "-m", "kata", *args]


def stub_run(tmp: Path) -> float | None:
    """Wall time of ``kata check --solutions ws`` on a fresh ``kata init`` workspace (None if no init)."""
    _, code = _run(_kata("init", "ws"), cwd=tmp)
    if code != 0:
        return None
    wall, _ = _run(_kata("check", "--solutions", "ws"), cwd=tmp)
    return wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default=",".join(multiprocessing.get_all_start_methods()))
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--skip-all", action="store_true", help="skip step 5 (all methods, serial and -n 2)")
    args = parser.parse_args(argv)
    methods = [m for m in args.methods.split(",") if m]

    costs = {m: cost_of_method(m) for m in multiprocessing.get_all_start_methods()}
    costs["os.fork"] = cost_of_fork()
    costs["subprocess"] = cost_of_subprocess()

    out: dict[str, Any] = {"python": sys.version.split()[0], "cpus": os.cpu_count(), "costs": costs}
    print(f"Python {out['python']} · {out['cpus']} CPUs")
    print("cost to start and join one process (median):")
    for key, value in costs.items():
        print(f"  {key:<11} {value * 1000:7.1f} ms")

    with tempfile.TemporaryDirectory(prefix="kata-bench-") as name:
        tmp = Path(name)
        out["suite"] = {}
        fixed, _ = _run(
            [sys.executable, *SUITE, "--collect-only"],
            env=dict(os.environ, **NO_AUTOLOAD),
        )
        out["fixed"] = fixed
        print(f"\npytest's fixed cost (start, plugins, collection: --collect-only): {fixed:.2f} s")
        print("suite per start method (serial):")
        print(f"  {'method':<11} {'wall':>7} {'starts':<48} {'floor':>7} {'ratio':>6} {'-fixed':>6}")
        for m in methods:
            run = run_suite(m, [], tmp, m)
            starts = run["starts"]
            floor = floor_of(starts, costs)
            run["floor"] = floor
            run["ratio"] = run["wall"] / floor if floor else None
            run["ratio_without_fixed"] = (run["wall"] - fixed) / floor if floor else None
            keep = ("wall", "exit", "starts", "floor", "ratio", "ratio_without_fixed")
            out["suite"][m] = {k: run[k] for k in keep}
            shown = ", ".join(f"{k} {v}" for k, v in sorted(starts.items()))
            r1 = f"{run['ratio']:.2f}" if floor else "-"
            r2 = f"{run['ratio_without_fixed']:.2f}" if floor else "-"
            row = f"  {m:<11} {run['wall']:6.1f}s {shown:<48} {floor:6.1f}s {r1:>6} {r2:>6}"
            print(f"{row}  exit {run['exit']}")

        wall, code = _run(_kata("check", "fork"))
        out["topic_fork"] = {"wall": wall, "exit": code}
        print(f"\nkata check fork: {wall:.2f} s (exit {code})")
        stubs = stub_run(tmp)
        out["stub_workspace"] = stubs
        shown = f"{stubs:.2f} s" if stubs else "n/a (no kata init)"
        print(f"stub workspace, kata check --solutions ws: {shown}")

        if not args.skip_all:
            joined = ",".join(methods)
            serial = run_suite(joined, [], tmp, "all-serial")
            parallel = run_suite(joined, ["-n", "2"], tmp, "all-xdist")
            same = serial["verdicts"] == parallel["verdicts"] and bool(serial["verdicts"])
            out["all_methods"] = {
                "serial": serial["wall"],
                "xdist_2": parallel["wall"],
                "same_verdicts": same,
                "exit": [serial["exit"], parallel["exit"]],
            }
            print(
                f"\nall start methods ({joined}): serial {serial['wall']:.1f} s, "
                f"-n 2 {parallel['wall']:.1f} s"
            )
            print(f"  same verdicts with and without xdist: {'yes' if same else 'NO'}")

    if "fork" in multiprocessing.get_all_start_methods():  # the server is forked (POSIX)
        plain, nodelay = cost_of_manager_connection(False), cost_of_manager_connection(True)
        out["manager_connection"] = {"plain": plain, "client_nodelay": nodelay}
        print(
            f"\nnew manager connection + proxy + one call: {plain * 1000:.1f} ms; "
            f"with TCP_NODELAY on the client: {nodelay * 1000:.1f} ms"
        )

    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
