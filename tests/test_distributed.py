"""Tests of spec/11-distributed.md: a master and workers sharing two queues over BaseManager.

Everything runs for real on 127.0.0.1 with port 0: the master's manager is a
real server process (started under the test's start method), workers are
real processes (``kata/probes/distributed.py``) or the real command line, and
the port is read from the manager or from the master's first line. Waits are
bounded; the "nothing comes" cases use short timeouts given as parameters
(``IDLE``). DIST-13 runs master and worker on two hosts made of network
namespaces (root only). After each test, nothing the test started may still
run or listen (the ``leftovers`` fixture).
"""

from __future__ import annotations

import collections
import contextlib
import errno
import multiprocessing
import os
import pickle
import queue
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from multiprocessing.managers import BaseManager
from pathlib import Path
from typing import Any

import psutil
import pytest

from kata import learner, reaper, testing
from kata.probes import distributed as probes

#: The note's ten tasks (its transcript), used wherever the numbers do not matter.
NOTE_TASKS = [3411, 1605, 1398, 4729, 5300, 7471, 68, 4219, 339, 7866]

#: How long a worker waits for a task, or a master for a result, when the test wants it to give up (s).
IDLE = 0.1

#: The environment variable that carries the key (hex), as the spec names it.
KEY_ENV = "KATA_AUTHKEY"

HOST = "127.0.0.1"
SERVING = re.compile(r"Serving on (\S*):(\d+)\b")
UNGUARDED = Path(probes.__file__).with_name("distributed_unguarded.py")

pytestmark = pytest.mark.skipif(os.name != "posix", reason="the kata's distributed tests run on POSIX")


def squares(numbers: list[int]) -> collections.Counter:
    return collections.Counter(f"{n} * {n} = {n * n}" for n in numbers)


# ------------------------------------------------------------------ fixtures


@pytest.fixture
def dist(impl):
    return impl("distributed")


@pytest.fixture
def key() -> bytes:
    return secrets.token_bytes(32)


@pytest.fixture
def package(request) -> str:
    return request.config.getoption("solutions")


def _tcp_listeners() -> dict[int, int] | None:
    """Socket inode -> port of every TCP socket in LISTEN here; None where there is no ``/proc/net/tcp``.

    One read of ``/proc/net/tcp`` and ``tcp6``: asking psutil per process
    parses both files again for each process, thousands of lines once the
    tests have left sockets in TIME_WAIT.
    """
    if not os.path.exists("/proc/net/tcp"):
        return None
    found = {}
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(name, encoding="ascii") as table:
            next(table)  # the header
            for line in table:
                fields = line.split()
                if fields[3] == "0A":  # TCP_LISTEN
                    found[int(fields[9])] = int(fields[1].rsplit(":", 1)[1], 16)
    return found


def _socket_inodes(pid: int) -> set[int]:
    """The inodes of the sockets process ``pid`` holds (``/proc/PID/fd``)."""
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:["):
                    inodes.add(int(link[8:-1]))
    return inodes


def _listening(pids: set[int]) -> set[tuple[int, int]]:
    """``(pid, port)`` of every TCP socket in LISTEN held by these processes."""
    found = set()
    listeners = _tcp_listeners()
    for pid in pids:
        if listeners is not None:
            found.update((pid, listeners[i]) for i in _socket_inodes(pid) if i in listeners)
            continue
        with contextlib.suppress(psutil.Error):
            for c in psutil.Process(pid).net_connections(kind="tcp"):
                if c.status == psutil.CONN_LISTEN:
                    found.add((pid, c.laddr.port))
    return found


def _listening_ports() -> set[int]:
    """Every port some process here listens on (TCP)."""
    listeners = _tcp_listeners()
    if listeners is not None:
        return set(listeners.values())
    return {c.laddr.port for c in psutil.net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN}


def _alive(procs: dict[int, psutil.Process]) -> set[int]:
    alive = set()
    for pid, proc in procs.items():
        with contextlib.suppress(psutil.Error):
            if proc.status() != psutil.STATUS_ZOMBIE:
                alive.add(pid)
    return alive


def _describe(proc: psutil.Process) -> str | None:
    """``process PID (command)`` while it runs; None once it has ended."""
    try:
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return f"process {proc.pid} ({' '.join(proc.cmdline())[:70]})"
    except psutil.Error:
        return None


def _reap_adopted(before: set[int]) -> None:
    """Reap the zombies of orphans the kata adopted (it is a subreaper), not of our own children.

    Killing a program's session (``run_program``, ``Program.stop``) can catch
    that program's helpers (its forkserver, its resource tracker) while they
    exit after it: orphaned, they become children of the test process. They
    are not leaks of the code under test; a child that multiprocessing knows
    of is left to the kata's containment.
    """
    ours = {p.pid for p in multiprocessing.active_children()}
    for pid, proc in reaper.descendants().items():
        with contextlib.suppress(psutil.Error, ChildProcessError):
            adopted = pid not in before and pid not in ours and proc.ppid() == os.getpid()
            if adopted and proc.status() == psutil.STATUS_ZOMBIE:
                os.waitpid(pid, os.WNOHANG)


@pytest.fixture(autouse=True)
def _without_nagle(monkeypatch) -> None:
    """Manager connections made in the test process skip the 40 ms Nagle stall (see the probes)."""
    from multiprocessing import connection

    monkeypatch.setattr(connection, "SocketClient", connection.SocketClient)
    probes.connect_without_nagle()


@pytest.fixture(autouse=True)
def leftovers() -> Iterator[set[int]]:
    """Per test: no new process still running, nothing listening on a port the test used.

    Yields the set of ports the test learned (tests add to it). Runs inside
    the kata's containment, so it sees a leak before the reaper stops it.
    """
    ports: set[int] = set()
    tree = {os.getpid(), *reaper.descendants()}
    before_procs, before_listen = set(tree), _listening(tree)
    yield ports
    helpers = reaper.run_helpers()

    def what_is_left() -> list[str]:
        _reap_adopted(before_procs)
        procs = reaper.descendants()
        tree_now = {os.getpid(), *procs}
        listen = sorted({p for _, p in _listening(tree_now) - before_listen} | (ports & _listening_ports()))
        left = [_describe(procs[pid]) for pid in sorted(_alive(procs) - before_procs - helpers)]
        return [d for d in left if d] + [f"a socket listening on port {port}" for port in listen]

    with contextlib.suppress(pytest.fail.Exception):  # give a closing socket a moment; judged below
        testing.until(lambda: not what_is_left(), "nothing left", timeout=2)
    left = what_is_left()
    if left:
        testing.fail(
            "still there after the test: " + "; ".join(left) + " (shut the manager down, join the workers)"
        )


class Program:
    """A real program in the background (its own session), its output read line by line with bounds."""

    def __init__(self, cmd: list[str], env: dict[str, str]) -> None:
        self.cmd = cmd
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            start_new_session=True,
        )
        self.lines: queue.Queue = queue.Queue()
        self.seen: list[str] = []
        self.errors: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.lines.put), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.errors.append), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream: Any, put: Any) -> None:
        for line in stream:
            put(line.rstrip("\n"))
        put(None)

    def _ended(self, what: str) -> str:
        testing.join(self._readers[1], "the program's stderr to close")
        code = self.proc.wait()
        err = "\n".join(e for e in self.errors if e is not None)
        return (
            f"the program ended (exit code {code}) before {what}; it printed:\n"
            + "\n".join(self.seen)
            + (f"\nand on stderr:\n{testing.cut(err)}" if err else "")
        )

    def line(self, what: str, timeout: float = testing.WAIT) -> str:
        """The next line of output; fail if the program ends first or prints nothing in ``timeout`` s."""
        got = testing.get(self.lines, what, timeout)
        if got is None:
            testing.fail(self._ended(what))
        self.seen.append(got)
        return got

    def until(self, pattern: re.Pattern, what: str) -> re.Match:
        """Read lines until one matches ``pattern`` (each read bounded)."""
        while True:
            m = pattern.search(self.line(what))
            if m:
                return m

    def finish(self, what: str, timeout: float = testing.WAIT) -> tuple[int, list[str], str]:
        """Wait for the program to end; its exit code, the lines not read yet, and stderr."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            testing.fail(
                f"timed out after {timeout:g} s waiting for {what}; it printed:\n" + "\n".join(self.seen)
            )
        rest = []
        while (got := testing.get(self.lines, "the program's last output")) is not None:
            rest.append(got)
        testing.join(self._readers[1], "the program's stderr to close")
        self.seen += rest
        return self.proc.returncode, rest, "\n".join(e for e in self.errors if e is not None)

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


@pytest.fixture
def programs() -> Iterator[list[Program]]:
    """Background programs started by the test; each is killed with its session at the end."""
    started: list[Program] = []
    yield started
    for program in started:
        program.stop()


def cli(dist: Any, *args: str) -> list[str]:
    return [sys.executable, "-m", dist.module.__name__, *args]


def start_cli_master(programs: list[Program], dist: Any, package: str, env: dict, *args: str) -> Program:
    program = Program(cli(dist, "master", *args), learner.child_env(package, env))
    programs.append(program)
    return program


def serving(program: Program, ports: set[int]) -> tuple[str, int]:
    """Read the master's lines up to ``Serving on HOST:PORT``; the address it gives."""
    m = program.until(SERVING, "the master's line 'Serving on HOST:PORT'")
    ports.add(int(m.group(2)))
    return m.group(1), int(m.group(2))


@contextlib.contextmanager
def master_of(dist: Any, key: bytes, ports: set[int], host: str = HOST, port: int = 0) -> Iterator[Any]:
    """The learner's ``start_master``, shut down at the end whatever happens."""
    manager = dist.start_master(key, host, port)
    try:
        ports.add(manager.address[1])
        yield manager
    finally:
        manager.shutdown()


def port_of(manager: Any) -> int:
    return manager.address[1]


def drain(lines: Any, what: str) -> list[tuple]:
    """Reports of one probe worker, up to its ``done`` or ``error``."""
    got = []
    while True:
        item = testing.get(lines, what)
        got.append(item)
        if item[0] in ("done", "error"):
            return got


def check_worker(p: multiprocessing.Process, reports: list[tuple]) -> int:
    """The worker's exit code is 0 and it reported ``done``; return how many tasks it did."""
    kind, value = reports[-1][:2]
    assert kind == "done", f"the worker process failed: {value}"
    assert p.exitcode == 0, f"the worker process exited with {p.exitcode}, expected 0"
    return value


def listener_ip(port: int) -> str | None:
    for c in psutil.net_connections(kind="tcp"):
        if c.status == psutil.CONN_LISTEN and c.laddr.port == port:
            return c.laddr.ip
    return None


class Blocker:
    """The test's own TCP socket on 127.0.0.1: bound only (refuses connections) or listening (port in use)."""

    def __init__(self, listen: bool) -> None:
        self.sock = socket.socket()
        self.sock.bind((HOST, 0))
        if listen:
            self.sock.listen()
        self.port = self.sock.getsockname()[1]

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def blocker() -> Iterator[Any]:
    made: list[Blocker] = []

    def make(listen: bool) -> Blocker:
        made.append(Blocker(listen))
        return made[-1]

    yield make
    for b in made:
        b.close()


# ------------------------------------------------------------------- DIST-1


@pytest.mark.spec("DIST-1")
@pytest.mark.parametrize("n", [3411, 68, 0, 9999])
def test_square_is_the_notes_line(dist, n):
    got = dist.square(n)
    assert got == f"{n} * {n} = {n * n}", f"square({n}) returned {got!r}"


@pytest.mark.spec("DIST-1", "DIST-3", "DIST-9")
def test_one_result_per_task(dist, key, start_method, leftovers):
    dist.square(2)  # a stub fails here, at once
    with master_of(dist, key, leftovers) as manager:
        tasks = manager.get_task_queue()
        for n in NOTE_TASKS:
            tasks.put(n)
        lines = multiprocessing.Queue()
        p = multiprocessing.Process(
            target=probes.run_worker, args=(dist.module.__name__, key, HOST, port_of(manager), IDLE, lines)
        )
        p.start()
        collect = testing.Background(
            dist.collect_results, manager, len(NOTE_TASKS), testing.WAIT, lambda _: None
        )
        results = collect.result("collect_results() to read one result per task")
        reports = drain(lines, "the worker process to finish")
        testing.join(p, "the worker process to leave after the queue stayed empty")
        leftover = manager.get_result_queue().qsize()
    assert collections.Counter(results) == squares(NOTE_TASKS), (
        f"collect_results() gave {sorted(results)}, expected one '%d * %d = %d' line per task:"
        f" {sorted(squares(NOTE_TASKS))}"
    )
    assert leftover == 0, f"{leftover} more result(s) were left in the result queue: one result per task"
    assert check_worker(p, reports) == len(NOTE_TASKS), f"worker() did {reports[-1][1]} tasks, expected 10"
    said = [r[1] for r in reports if r[0] == "line"]
    assert said[:1] == [f"Connect to server {HOST}..."], f"worker() said {said}"
    assert said[-2:] == ["task queue is empty.", "worker exit."], (
        f"worker() said {said}; once the queue stayed empty: 'task queue is empty.', 'worker exit.'"
    )


# ------------------------------------------------------------------- DIST-2


@pytest.mark.spec("DIST-2")
def test_two_workers_share_the_tasks(dist, key, start_method, leftovers):
    with master_of(dist, key, leftovers) as manager:
        tasks = manager.get_task_queue()  # one proxy: each new one costs connections to the server
        for n in NOTE_TASKS:
            tasks.put(n)
        lines, gate = multiprocessing.Queue(), multiprocessing.Event()
        args = (dist.module.__name__, key, HOST, port_of(manager), IDLE, lines, gate)
        first = multiprocessing.Process(target=probes.run_sharing_worker, args=args)
        second = multiprocessing.Process(target=probes.run_sharing_worker, args=args)
        first.start()
        try:
            first_task = testing.get(lines, "the first worker to take a task")
            assert first_task[0] == "task", f"the first worker failed: {first_task[1]}"
            second.start()  # the first one holds its task at the gate: the next task is the second's
            second_task = testing.get(lines, "the second worker to take a task")
            assert second_task[0] == "task", f"the second worker failed: {second_task[1]}"
        finally:
            gate.set()
        results = dist.collect_results(manager, len(NOTE_TASKS), testing.WAIT, lambda _: None)
        reports = [first_task, second_task]
        ends = 0
        while ends < 2:
            item = testing.get(lines, "both workers to finish")
            reports.append(item)
            ends += item[0] in ("done", "error")
        testing.join(first, "the first worker to leave")
        testing.join(second, "the second worker to leave")
    errors = [r[1] for r in reports if r[0] == "error"]
    assert not errors, f"a worker failed: {errors}"
    taken = [r[2] for r in reports if r[0] == "task"]
    by_pid = collections.Counter(r[1] for r in reports if r[0] == "task")
    assert len(by_pid) == 2, f"tasks were taken by {dict(by_pid)}, expected two worker processes"
    assert collections.Counter(taken) == collections.Counter(NOTE_TASKS), (
        f"the workers took {sorted(taken)}: each of the ten tasks exactly once"
    )
    done = [r[1] for r in reports if r[0] == "done"]
    assert sum(done) == len(NOTE_TASKS) and all(done), (
        f"the two workers did {done} tasks: each task exactly once, both took some"
    )
    assert collections.Counter(results) == squares(NOTE_TASKS), f"the master got {sorted(results)}"


# ------------------------------------------------------------------- DIST-3


def _explain_name_error(exc: NameError) -> str:
    return (
        f"the worker raised NameError ({exc}) when the queue ran dry: the exception is queue.Empty, from"
        " the module queue (`import queue`); the note's Queue.Empty names nothing"
    )


@pytest.mark.spec("DIST-3")
def test_worker_leaves_when_the_queue_stays_empty(dist, key, start_method, leftovers):
    with master_of(dist, key, leftovers) as manager:
        said: list[str] = []
        run = testing.Background(dist.worker, key, HOST, port_of(manager), IDLE, 0.0, said.append)
        try:
            done = run.result(f"worker() to leave after {IDLE} s without a task")
        except NameError as exc:
            testing.fail(_explain_name_error(exc))
    assert done == 0, f"worker() returned {done!r} with no task given, expected 0"
    assert said[-2:] == ["task queue is empty.", "worker exit."], (
        f"worker() said {said}; its last two lines should be 'task queue is empty.', 'worker exit.'"
    )


@pytest.mark.spec("DIST-3")
def test_worker_leaves_when_the_master_shuts_down(dist, key, start_method, leftovers):
    with master_of(dist, key, leftovers) as manager:
        connection = dist.connect_worker(key, HOST, port_of(manager))
        run = testing.Background(dist.work, connection, testing.WAIT * 3, 0.0, lambda _: None)
        run.parked_in("_callmethod", "managers.py", "work() to wait for a task")
    try:
        done = run.result("work() to return once the master had shut down")
    except (EOFError, ConnectionError) as exc:
        testing.fail(
            f"work() raised {type(exc).__name__} when the master shut down while it waited for a task:"
            " the master has all its results, so the worker's job is over; return"
        )
    assert done == 0, f"work() returned {done!r}, expected 0 tasks done"


@pytest.mark.spec("DIST-3")
def test_worker_takes_none_as_the_master_gone(dist, key, start_method, leftovers):
    """A dying server may answer a waiting ``get`` with None (spec/11, DIST-3): put there, it is the same."""
    with master_of(dist, key, leftovers) as manager:
        tasks = manager.get_task_queue()
        for n in (*NOTE_TASKS[:2], None, NOTE_TASKS[2]):
            tasks.put(n)
        connection = dist.connect_worker(key, HOST, port_of(manager))
        done = testing.Background(dist.work, connection, testing.WAIT, 0.0, lambda _: None).result(
            "work() to return on the None"
        )
        left = tasks.qsize()
    assert done == 2, f"work() returned {done!r} after two tasks and a None: the count of tasks done, 2"
    assert left == 1, f"work() went on after the None ({left} task left, not 1): None means the master left"


# ------------------------------------------------------------------- DIST-4


@pytest.mark.spec("DIST-4", "DIST-11")
def test_master_gives_up_without_a_worker(dist, key, start_method, leftovers):
    said: list[str] = []
    before = set(reaper.descendants())
    run = testing.Background(dist.master, key, [7, 8], timeout=IDLE, say=said.append)  # host, port: defaults
    with pytest.raises(TimeoutError) as caught:
        run.result(f"master() to give up after its {IDLE} s timeout", timeout=testing.WAIT)
    m = next(filter(None, map(SERVING.search, said)), None)
    assert m, f"master() never said 'Serving on HOST:PORT'; it said {said}"
    leftovers.add(int(m.group(2)))
    chosen = _ephemeral_range()
    assert m.group(1) == HOST and (chosen is None or int(m.group(2)) in chosen), (
        f"master() with its defaults said {m.group(0)!r}: 127.0.0.1 and a port the system chose (DIST-11)"
    )
    message = str(caught.value)
    assert "worker" in message, (
        f"the TimeoutError should tell the user a worker is missing; it says {message!r}"
    )
    alive = _alive({pid: proc for pid, proc in reaper.descendants().items() if pid not in before})
    assert not alive - reaper.run_helpers(), (
        "master() gave up but its manager's server process still runs: shut the manager down in `finally`"
    )


@pytest.mark.spec("DIST-4")
def test_cli_master_gives_up_without_a_worker(demo, key):
    run = demo("distributed", "master", "--tasks", "2", "--timeout", str(IDLE), env={KEY_ENV: key.hex()})
    assert run.returncode == 1, f"the master with no worker exited with {run.returncode}: expected 1"
    assert "worker" in run.stderr and "Traceback" not in run.stderr, (
        f"expected one clear line on stderr saying no worker answered; got:\n{testing.cut(run.stderr)}"
    )


# ------------------------------------------------------------------- DIST-5


@pytest.mark.spec("DIST-5")
def test_wrong_key_is_refused_and_the_master_serves_on(dist, key, start_method, leftovers):
    with master_of(dist, key, leftovers) as manager:
        with pytest.raises(multiprocessing.AuthenticationError) as refused:
            dist.connect_worker(secrets.token_bytes(32), HOST, port_of(manager))
        assert "key" in str(refused.value), (
            f"the AuthenticationError should say the master refused our key; it says {str(refused.value)!r}"
        )
        tasks, results_queue = manager.get_task_queue(), manager.get_result_queue()
        for n in NOTE_TASKS[:3]:
            tasks.put(n)
        right = dist.connect_worker(key, HOST, port_of(manager))
        done = testing.Background(dist.work, right, IDLE, 0.0, lambda _: None).result(
            "the right worker to finish"
        )
        results = [results_queue.get(timeout=testing.WAIT) for _ in range(done)]
    assert done == 3 and collections.Counter(results) == squares(NOTE_TASKS[:3]), (
        f"after refusing a wrong key the master should serve the right worker: it did {done} tasks, {results}"
    )


# ------------------------------------------------------------------- DIST-6


@pytest.mark.spec("DIST-6")
def test_nothing_listening_is_refused_with_a_reason(dist, key, blocker):
    port = blocker(listen=False).port  # bound by the test, never listening: connections are refused
    with pytest.raises(ConnectionRefusedError) as caught:
        dist.connect_worker(key, HOST, port)
    message = str(caught.value).lower()
    assert "running" in message and "port" in message, (
        f"the message should say the master is not running or serves on another port; it says {message!r}"
    )


# ------------------------------------------------------------------- DIST-7


@pytest.mark.spec("DIST-7")
def test_connecting_to_empty_host_is_refused_by_the_program(dist, key, blocker):
    port = blocker(listen=False).port
    try:
        dist.connect_worker(key, "", port)
    except ValueError as exc:
        assert "interface" in str(exc), f"say that '' means every interface (for binding); the message: {exc}"
    except OSError as exc:
        testing.fail(
            f"connect_worker('') tried to connect ({type(exc).__name__}: {exc}): '' is no address to"
            " connect to (Windows: WinError 10049; Linux quietly takes it for this host). Raise ValueError"
        )
    else:
        testing.fail("connect_worker('') returned: it should raise ValueError before connecting")


@pytest.mark.spec("DIST-7")
def test_binding_empty_host_serves_every_interface(dist, key, start_method, leftovers):
    with master_of(dist, key, leftovers, host="") as manager:
        ip = listener_ip(port_of(manager))
        connection = dist.connect_worker(key, HOST, port_of(manager))
        connection.get_task_queue().put(5)
        got = manager.get_task_queue().get(timeout=testing.WAIT)
    assert ip in ("0.0.0.0", "::"), f"start_master(key, '') listens on {ip!r}: '' should bind every interface"
    assert got == 5


# ------------------------------------------------------------------- DIST-8


@pytest.mark.spec("DIST-8")
def test_port_in_use_is_a_clear_error(dist, key, start_method, blocker, leftovers):
    port = blocker(listen=True).port
    try:
        manager = dist.start_master(key, HOST, port)
    except OSError as exc:
        assert exc.errno == errno.EADDRINUSE and "in use" in str(exc) and str(port) in str(exc), (
            f"expected OSError(EADDRINUSE) saying port {port} is in use; got errno {exc.errno}: {exc}"
        )
    except EOFError:
        testing.fail(
            "start_master raised EOFError: the server process could not bind the port and died. Check the"
            " port first (or catch EOFError) and raise OSError(errno.EADDRINUSE, 'port ... already in use')"
        )
    else:
        leftovers.add(port_of(manager))
        manager.shutdown()
        testing.fail(
            f"start_master on a port in use returned a manager on {manager.address}: it ignores `port`"
        )


@pytest.mark.spec("DIST-8")
def test_cli_port_in_use(demo, key, blocker):
    port = blocker(listen=True).port
    run = demo("distributed", "master", "--port", str(port), "--tasks", "1", env={KEY_ENV: key.hex()})
    said = run.stderr
    assert run.returncode == 1 and "in use" in said and str(port) in said and "Traceback" not in said, (
        f"expected exit 1 and one line saying port {port} is in use; got exit {run.returncode}:\n"
        + testing.cut(said)
    )


#: An address of TEST-NET-1 (RFC 5737): on no host, so binding it fails.
NOT_HERE = "192.0.2.1"


@pytest.mark.spec("DIST-8")
def test_an_address_not_on_this_host_is_a_clear_error(dist, key, start_method, leftovers):
    with socket.socket() as probe:
        try:
            probe.bind((NOT_HERE, 0))
        except OSError:
            pass
        else:
            pytest.skip(f"this host lets a socket bind {NOT_HERE} (ip_nonlocal_bind?): nothing fails here")
    try:
        manager = dist.start_master(key, NOT_HERE, 0)
    except OSError as exc:
        assert NOT_HERE in str(exc), f"the OSError should name the address it could not serve on: {exc}"
    except EOFError:
        testing.fail(
            f"start_master({NOT_HERE!r}) raised a bare EOFError: the server process could not bind and died;"
            " catch it and raise OSError naming the address"
        )
    else:
        manager.shutdown()
        testing.fail(f"start_master({NOT_HERE!r}, 0) returned a manager on {manager.address}")


def _port_in_time_wait() -> int:
    """A port on HOST that nothing listens on, held in TIME_WAIT by a connection just closed.

    The side that closes a TCP connection first keeps its address in
    TIME_WAIT for a minute: the listener's side here, as when a master has
    just ended. A plain ``bind`` fails there with EADDRINUSE; with
    ``SO_REUSEADDR``, as multiprocessing's listener binds, it succeeds.
    """
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((HOST, 0))
        listener.listen()
        port = listener.getsockname()[1]
        with socket.create_connection((HOST, port), timeout=testing.WAIT) as client:
            accepted, _ = listener.accept()
            accepted.close()  # this side closes first: TIME_WAIT on (HOST, port)
            assert client.recv(1) == b"", "the test's own connection did not close"
    with socket.socket() as plain:
        try:
            plain.bind((HOST, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return port
            raise
    pytest.skip("this system lets a plain bind reuse a port in TIME_WAIT: nothing to tell apart here")


@pytest.mark.spec("DIST-8")
def test_a_port_in_time_wait_is_free(dist, key, start_method, leftovers):
    port = _port_in_time_wait()
    try:
        manager = dist.start_master(key, HOST, port)
    except OSError as exc:
        testing.fail(
            f"start_master on port {port}, in TIME_WAIT after a closed connection but listened on by"
            f" nothing, raised {exc}: the manager's listener binds with SO_REUSEADDR and would serve there;"
            " check the port the same way (a master restarted at once on its port must start)"
        )
    leftovers.add(port_of(manager))
    manager.shutdown()


# ------------------------------------------------------------------- DIST-9


@pytest.mark.spec("DIST-9")
@pytest.mark.parametrize("name", ["get_task_queue", "get_result_queue"])
def test_callables_are_module_level_functions(dist, name):
    registry = getattr(dist.QueueManager, "_registry", {})
    assert name in registry, f"QueueManager.register({name!r}, callable=...) is missing"
    func = registry[name][0]
    assert getattr(func, "__name__", "") != "<lambda>", (
        f"{name} is registered with a lambda: spawn and forkserver pickle it and fail (WinError 87)"
    )
    try:
        pickle.dumps(func)
    except (pickle.PicklingError, AttributeError, TypeError) as exc:
        testing.fail(f"the callable of {name} does not pickle ({exc}): make it a module-level function")


class _LambdaManager(BaseManager):
    """The note's manager, callables as lambdas."""


_LambdaManager.register("get_task_queue", callable=lambda: queue.Queue())


@pytest.mark.spec("DIST-9")
def test_lambda_callables_fail_to_pickle_unless_forked(start_method):
    manager = _LambdaManager(address=(HOST, 0), authkey=secrets.token_bytes(32))
    if start_method == "fork":
        manager.start()  # fork copies the lambda, nothing is pickled
        manager.shutdown()
        return
    with pytest.raises(pickle.PicklingError) as caught:
        manager.start()
    assert "lambda" in str(caught.value)


# ------------------------------------------------------------------ DIST-10


@pytest.mark.spec("DIST-10")
def test_unguarded_master_script(dist, package, start_method):
    run = testing.run_program(
        [sys.executable, str(UNGUARDED), dist.module.__name__, start_method],
        "the unguarded master script to end",
        env=learner.child_env(package),
    )
    if start_method == "fork":
        assert run.returncode == 0 and "master started" in run.stdout, testing.cut(run.stderr)
    else:
        assert run.returncode != 0, "the unguarded script worked under {start_method}: expected it to fail"
        assert "RuntimeError" in run.stderr and "bootstrapping phase" in run.stderr, testing.cut(run.stderr)


@pytest.mark.spec("DIST-10")
def test_cli_master_is_guarded(demo, key, start_method):
    run = demo(
        "distributed", "master", "--tasks", "0", "--start-method", start_method, env={KEY_ENV: key.hex()}
    )
    assert "bootstrapping phase" not in run.stderr, (
        "the manager's server re-ran the module's code: put the command line under"
        f" `if __name__ == '__main__':`\n{testing.cut(run.stderr)}"
    )
    assert run.returncode == 0, f"exit {run.returncode}:\n{testing.cut(run.stderr)}"


# ------------------------------------------------------------------ DIST-11


def _ephemeral_range() -> range | None:
    with contextlib.suppress(OSError, ValueError):
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return range(int(low), int(high) + 1)
    return None


@pytest.mark.spec("DIST-11")
def test_master_binds_loopback_on_a_free_port(dist, key, start_method, leftovers):
    manager = dist.start_master(key)
    try:
        host, port = manager.address
        leftovers.add(port)
        ip = listener_ip(port)
    finally:
        manager.shutdown()
    assert host == HOST and ip == HOST, (
        f"start_master(key) serves on {host!r} (listening on {ip!r}): by default bind 127.0.0.1 only;"
        " '' (the note's) opens it to every interface, and behind the key everything is pickle"
    )
    chosen = _ephemeral_range()
    assert port != 0 and (chosen is None or port in chosen), (
        f"start_master(key) serves on port {port}: with port 0 the system picks a free one"
        f"{f' (from {chosen.start}-{chosen.stop - 1} here)' if chosen else ''}; manager.address tells which"
    )


# ------------------------------------------------------------------ DIST-12


@pytest.mark.spec("DIST-12")
def test_make_key(dist):
    first, second = dist.make_key(), dist.make_key()
    assert isinstance(first, bytes) and len(first) == 32, (
        f"make_key() gave {first!r}: 32 random bytes expected"
    )
    assert first != second, "make_key() gave the same key twice"


@pytest.mark.spec("DIST-12")
def test_load_key(dist, key, tmp_path):
    path = tmp_path / "key.hex"
    path.write_text(key.hex() + "\n")
    assert dist.load_key({KEY_ENV: key.hex()}) == key, f"the key from ${KEY_ENV} (hex)"
    assert dist.load_key({}, str(path)) == key, "the key from a file (hex)"
    assert dist.load_key({}) is None, "no key given: None"


@pytest.mark.spec("DIST-12")
def test_master_serves_with_the_key_it_is_given(dist, key, start_method, leftovers):
    from multiprocessing.connection import Client

    with master_of(dist, key, leftovers) as manager:
        try:
            Client((HOST, port_of(manager)), authkey=b"abc").close()
        except multiprocessing.AuthenticationError:
            pass
        else:
            testing.fail("the master let in a client with the note's key b'abc': serve with the key given")
        try:
            Client((HOST, port_of(manager)), authkey=key).close()
        except multiprocessing.AuthenticationError:
            testing.fail(
                "the master refused the key it was given: serve with `authkey`, not a fixed key (b'abc')"
            )


@pytest.mark.spec("DIST-12")
def test_cli_master_without_a_key_makes_one(dist, package, programs, leftovers, demo, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    master = start_cli_master(programs, dist, package, {}, "--tasks", "3")
    _, port = serving(master, leftovers)
    told = "\n".join(master.seen)
    m = re.search(r"--key-file (\S+)", told)
    assert m, f"the master should tell how to hand its key to a worker (--key-file FILE); it said:\n{told}"
    path = Path(m.group(1))
    made = bytes.fromhex(path.read_text().strip())
    assert len(made) == 32, f"the key in {path} has {len(made)} bytes, expected 32"
    assert path.stat().st_mode & 0o077 == 0, f"{path} can be read by others: mode {oct(path.stat().st_mode)}"
    assert made.hex() not in told, "the master printed the key itself: terminals and logs keep it"
    no_key = demo("distributed", "worker", "--host", HOST, "--port", str(port))
    assert no_key.returncode != 0 and KEY_ENV in no_key.stderr, f"a worker with no key: {no_key.stderr}"
    worker = demo(
        "distributed", "worker", "--host", HOST, "--port", str(port), "--key-file", str(path), "--idle", "5"
    )
    code, rest, err = master.finish("the master to end after its three results")
    assert worker.returncode == 0, testing.cut(worker.stderr)
    assert code == 0 and len([ln for ln in rest if ln.startswith("Result: ")]) == 3, f"{rest}\n{err}"
    assert not path.exists(), f"the master left its key file {path} behind"


# ------------------------------------------------------------------ DIST-13

NS_MASTER_IP, NS_WORKER_IP = "169.254.77.1", "169.254.77.2"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    run = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=testing.WAIT)
    if check and run.returncode != 0:
        raise OSError(f"ip {' '.join(args)}: {run.stderr.strip()}")
    return run


def _our_namespaces(prefix: str) -> list[str]:
    listed = _ip("netns", "list", check=False).stdout.split()
    return [name for name in listed if name.startswith(prefix)]


@contextlib.contextmanager
def two_hosts() -> Iterator[tuple[str, str]]:
    """Two network namespaces joined by a veth pair: 169.254.77.1/30 and .2/30. Removed whatever happens."""
    if os.geteuid() != 0:
        pytest.skip("two hosts need network namespaces, and making them needs root")
    if shutil.which("ip") is None:
        pytest.skip("two hosts need network namespaces: the `ip` command (iproute2) is missing")
    tag = f"{os.getpid()}{secrets.token_hex(2)}"
    prefix = f"kdist{tag}"
    ns_m, ns_w, veth_m, veth_w = f"{prefix}m", f"{prefix}w", f"kdm{tag}", f"kdw{tag}"
    try:
        try:
            _ip("netns", "add", ns_m)
        except OSError as exc:
            pytest.skip(f"cannot make a network namespace here: {exc}")
        _ip("netns", "add", ns_w)
        _ip("link", "add", veth_m, "type", "veth", "peer", "name", veth_w)
        for ns, veth, ip in ((ns_m, veth_m, NS_MASTER_IP), (ns_w, veth_w, NS_WORKER_IP)):
            _ip("link", "set", veth, "netns", ns)
            _ip("-n", ns, "addr", "add", f"{ip}/30", "dev", veth)
            _ip("-n", ns, "link", "set", veth, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        yield ns_m, ns_w
    finally:
        for ns in (ns_m, ns_w):
            _ip("netns", "del", ns, check=False)
        _ip("link", "del", veth_m, check=False)  # only if it never reached its namespace
        left = _our_namespaces(prefix)
        assert not left, f"network namespaces left behind: {left}"


@pytest.mark.spec("DIST-13")
def test_master_and_worker_on_two_hosts(dist, key, package, programs, leftovers):
    dist.square(2)
    env = learner.child_env(package, {KEY_ENV: key.hex()})
    with two_hosts() as (ns_m, ns_w):
        master = Program(
            ["ip", "netns", "exec", ns_m, *cli(dist, "master", "--host", NS_MASTER_IP, "--tasks", "10")], env
        )
        programs.append(master)
        host, port = serving(master, leftovers)
        assert host == NS_MASTER_IP, f"the master serves on {host}, expected its own address {NS_MASTER_IP}"
        worker = testing.run_program(
            [
                "ip",
                "netns",
                "exec",
                ns_w,
                *cli(dist, "worker", "--host", host, "--port", str(port), "--idle", "5"),
            ],
            "the worker on the other host to finish",
            env=env,
        )
        code, rest, err = master.finish("the master to end after its ten results")
    puts = [int(m.group(1)) for m in map(re.compile(r"Put task (\d+)\.\.\.").fullmatch, master.seen) if m]
    results = [ln.removeprefix("Result: ") for ln in rest if ln.startswith("Result: ")]
    assert worker.returncode == 0, f"the worker in {ns_w} failed:\n{testing.cut(worker.stderr)}"
    assert code == 0, f"the master in {ns_m} exited with {code}:\n{testing.cut(err)}"
    assert len(puts) == 10 and collections.Counter(results) == squares(puts), (
        f"the master put {puts} and got back {results}"
    )


# ------------------------------------------------------------------ DIST-14


def _method_of_children(pid: int) -> str:
    """The start method a program's children show: spawn and forkserver start a fresh interpreter."""
    for child in psutil.Process(pid).children(recursive=True):
        with contextlib.suppress(psutil.Error):
            command = " ".join(child.cmdline())
            for method in ("spawn", "forkserver"):
                if f"multiprocessing.{method}" in command:
                    return method
    return "fork"


@pytest.mark.spec("DIST-12", "DIST-14")
def test_cli_pair_prints_the_notes_transcripts(
    dist, key, package, programs, start_method, leftovers, demo, tmp_path
):
    env = {KEY_ENV: key.hex()}
    key_file = tmp_path / "key.hex"
    key_file.write_text(key.hex() + "\n")
    master = start_cli_master(
        programs, dist, package, {}, "--tasks", "10", "--delay", "0", "--start-method", start_method,
        "--key-file", str(key_file),
    )  # fmt: skip
    _, port = serving(master, leftovers)
    assert master.seen[0] == f"Serving on {HOST}:{port}", f"the master's first line: {master.seen[0]!r}"
    puts = []
    while (line := master.line("the master's 'Put task N...' lines")) != "Try get results...":
        m = re.fullmatch(r"Put task (\d+)\.\.\.", line)
        assert m, f"expected 'Put task N...' or 'Try get results...', got {line!r}"
        puts.append(int(m.group(1)))
    used = _method_of_children(master.proc.pid)  # its manager's server runs until the results are in
    assert used == start_method, f"run with --start-method {start_method}, the master's server used {used}"
    worker = demo(
        "distributed", "worker", "--host", HOST, "--port", str(port), "--delay", "0", "--idle", "5", env=env
    )
    code, rest, err = master.finish("the master to end after its ten results")
    assert worker.returncode == 0, (
        f"the worker exited with {worker.returncode}:\n{testing.cut(worker.stderr)}"
    )
    assert worker.stdout.splitlines() == [
        f"Connect to server {HOST}...",
        *(f"run task {n} * {n}..." for n in puts),
        "worker exit.",
    ], f"the worker printed:\n{worker.stdout}"
    assert code == 0, f"the master exited with {code}:\n{testing.cut(err)}"
    assert len(puts) == 10 and rest == [f"Result: {n} * {n} = {n * n}" for n in puts] + ["master exit."], (
        "the master printed:\n" + "\n".join(master.seen)
    )
