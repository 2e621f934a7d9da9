"""Distributed processes: a master and workers sharing two queues over BaseManager (spec/11-distributed.md).

The note's ``task_master.py`` and ``task_worker.py``, corrected and made safe:

    export KATA_AUTHKEY=$(python -c 'import secrets; print(secrets.token_hex(32))')
    python -m solutions.distributed master            # prints the address it serves on
    python -m solutions.distributed worker --host 127.0.0.1 --port PORT

The key comes from ``KATA_AUTHKEY`` (hex) or ``--key-file FILE`` (hex), never
from the command line (``ps`` shows arguments to every user). A master given
no key makes a random 32-byte one, writes it to a file only you can read, and
tells you to start the worker with ``--key-file`` that file.

The master binds 127.0.0.1 unless told otherwise: behind the key, everything
is pickle, and whoever has the key can run code in the master.
"""

from __future__ import annotations

import argparse
import errno
import multiprocessing
import os
import queue
import random
import secrets
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from multiprocessing.managers import BaseManager

#: The environment variable that carries the key, as hex.
KEY_ENV = "KATA_AUTHKEY"

#: Bytes of a key the master makes when it is given none.
KEY_BYTES = 32

# The two queues live in the manager's server process: it imports this module
# and serves these objects; master and workers hold proxies to them.
_tasks: queue.Queue = queue.Queue()
_results: queue.Queue = queue.Queue()


def get_task_queue() -> queue.Queue:
    """DIST-9: the task queue, as the manager's server process serves it.

    A module-level function, not a lambda: ``manager.start()`` under spawn or
    forkserver pickles the registered callables, and pickle stores a function
    by its importable name (a lambda has none: the note's WinError 87).
    """
    return _tasks


def get_result_queue() -> queue.Queue:
    """DIST-9: the result queue, as the manager's server process serves it."""
    return _results


class QueueManager(BaseManager):
    """The note's QueueManager; the worker uses it too (a client never calls the callables)."""


QueueManager.register("get_task_queue", callable=get_task_queue)
QueueManager.register("get_result_queue", callable=get_result_queue)


def square(n: int) -> str:
    """DIST-1: the worker's answer to task ``n``: ``'n * n = n²'``."""
    return "%d * %d = %d" % (n, n, n * n)  # noqa: UP031 - the note's own expression


def make_key() -> bytes:
    """DIST-12: a new random key of ``KEY_BYTES`` (32) bytes, from ``secrets``."""
    return secrets.token_bytes(KEY_BYTES)


def load_key(environ: Mapping[str, str] = os.environ, key_file: str | None = None) -> bytes | None:
    """DIST-12: the key from ``key_file``, else from ``environ[KEY_ENV]`` (both hex); None if neither."""
    if key_file is not None:
        with open(key_file, encoding="ascii") as f:
            text = f.read()
    else:
        text = environ.get(KEY_ENV, "")
    if not text.strip():
        return None
    return bytes.fromhex(text.strip())


def start_master(authkey: bytes, host: str = "127.0.0.1", port: int = 0) -> QueueManager:
    """DIST-7, DIST-8, DIST-11, DIST-12: start a manager serving the two queues on ``(host, port)``.

    It serves with ``authkey`` (never a fixed key like the note's ``b'abc'``),
    on 127.0.0.1 unless told otherwise (``''`` means every interface). Port 0
    lets the system choose a free port: the real address is
    ``manager.address`` afterwards. A port already in use raises ``OSError``
    (``EADDRINUSE``) with a message that says so.
    """
    if port:
        _check_free(host, port)
    manager = QueueManager(address=(host, port), authkey=authkey)
    try:
        manager.start()
    except EOFError:  # the server process died before it reported its address
        raise OSError(f"the manager's server could not start on {host}:{port} (its error is above)") from None
    return manager


def _check_free(host: str, port: int) -> None:
    """Raise a clear ``OSError`` if ``(host, port)`` cannot be bound (a listener of our own would fail there).

    Without this, ``manager.start()`` gives only ``EOFError``: the bind fails
    in the server process, which dies with the real error on stderr.
    """
    with socket.socket() as probe:
        if os.name == "posix":
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as multiprocessing's listener does
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            raise OSError(
                errno.EADDRINUSE,
                f"port {port} on {host or 'every interface'} is already in use (another master still"
                " running?): stop that program, or choose another --port (0 picks a free one)",
            ) from None


def _shown(address: tuple[str, int]) -> str:
    host, port = address
    return f"{host}:{port}" + (" (every interface)" if host in ("", "0.0.0.0") else "")


def collect_results(
    manager: QueueManager, count: int, timeout: float, say: Callable[[str], object] = print
) -> list[str]:
    """DIST-1, DIST-4: read ``count`` results, saying each; ``TimeoutError`` if one takes over ``timeout``."""
    results = manager.get_result_queue()
    got: list[str] = []
    for _ in range(count):
        try:
            r = results.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(
                f"no result within {timeout:g} s ({len(got)} of {count} came): is a worker running,"
                f" connected to {_shown(manager.address)} with the same key?"
            ) from None
        say(f"Result: {r}")
        got.append(r)
    return got


def master(
    authkey: bytes,
    numbers: Sequence[int],
    host: str = "127.0.0.1",
    port: int = 0,
    timeout: float = 10.0,
    delay: float = 0.0,
    say: Callable[[str], object] = print,
) -> list[str]:
    """DIST-1, DIST-4, DIST-14: the note's task_master: serve, put the tasks, collect one result per task.

    Says where it serves first (the real port when ``port`` is 0). Shuts its
    manager down whatever happens, also when no result comes in time
    (``TimeoutError``).
    """
    manager = start_master(authkey, host, port)
    try:
        say(f"Serving on {_shown(manager.address)}")
        tasks = manager.get_task_queue()
        for n in numbers:
            say(f"Put task {n}...")
            tasks.put(n)
            if delay:
                time.sleep(delay)  # sleep-ok: the pace the user asked for (--delay)
        say("Try get results...")
        results = collect_results(manager, len(numbers), timeout, say)
    finally:
        manager.shutdown()
    say("master exit.")
    return results


def connect_worker(authkey: bytes, host: str, port: int) -> QueueManager:
    """DIST-5, DIST-6, DIST-7: connect to the master at ``(host, port)``; clear errors for the usual mistakes.

    ``''`` raises ``ValueError`` (it means every interface when binding, and
    is no address to connect to: the note's WinError 10049). Nothing
    listening raises ``ConnectionRefusedError`` saying why (WinError 10061);
    a wrong key raises ``multiprocessing.AuthenticationError``.
    """
    if not host:
        raise ValueError(
            "'' is no address to connect to: a master binds '' to serve on every interface,"
            " a worker connects to one of them (e.g. --host 127.0.0.1, or the master's IP)"
        )
    manager = QueueManager(address=(host, port), authkey=authkey)
    try:
        manager.connect()
    except ConnectionRefusedError as exc:
        raise ConnectionRefusedError(
            exc.errno,
            f"nothing listens on {host}:{port}: the master is not running, or it serves on another"
            " port (its first line says which), or a firewall refuses it",
        ) from None
    except multiprocessing.AuthenticationError as exc:
        raise multiprocessing.AuthenticationError(
            f"the master at {host}:{port} refused our key ({exc}): use the master's key"
        ) from None
    return manager


def work(
    manager: QueueManager,
    idle: float = 1.0,
    delay: float = 0.0,
    say: Callable[[str], object] = print,
    on_task: Callable[[int], object] | None = None,
) -> int:
    """DIST-1, DIST-2, DIST-3: answer tasks until none comes in ``idle`` s or the master leaves; count them.

    ``on_task(n)`` (for tests) is called after taking task ``n`` and before
    putting its answer. Empty is ``queue.Empty``: the note's ``Queue.Empty``
    is a NameError, raised just when the queue runs dry. A master that shuts
    down while we wait for a task (``EOFError``, ``ConnectionError``, or a
    ``None`` answered by its dying server) has all its results: that ends the
    work too, without a line.
    """
    tasks, results = manager.get_task_queue(), manager.get_result_queue()
    done = 0
    while True:
        try:
            n = tasks.get(timeout=idle)
        except queue.Empty:
            say("task queue is empty.")
            return done
        except (EOFError, ConnectionError):  # the master has shut its manager down
            return done
        if n is None:  # seen under load: a get racing the manager's shutdown may answer None
            return done
        say(f"run task {n} * {n}...")
        if on_task is not None:
            on_task(n)
        if delay:
            time.sleep(delay)  # sleep-ok: the work the note simulates (--delay)
        results.put(square(n))
        done += 1


def worker(
    authkey: bytes,
    host: str,
    port: int,
    idle: float = 1.0,
    delay: float = 0.0,
    say: Callable[[str], object] = print,
) -> int:
    """DIST-3, DIST-14: the note's task_worker: connect, answer tasks until none is left, say goodbye."""
    say(f"Connect to server {host}...")
    manager = connect_worker(authkey, host, port)
    done = work(manager, idle, delay, say)
    say("worker exit.")
    return done


def _say(line: str) -> None:
    print(line, flush=True)


def _master_key(key_file: str | None) -> tuple[bytes, str | None]:
    """The master's key, and the path of a key file it made (to remove at exit), if it made one."""
    key = load_key(key_file=key_file)
    if key is not None:
        return key, None
    key = make_key()
    fd, path = tempfile.mkstemp(prefix="kata-key-", suffix=".hex")  # mode 0600: only you can read it
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(key.hex() + "\n")
    _say(f"No key given: made a random {KEY_BYTES}-byte key, in {path} (only you can read it).")
    _say(f"Start the worker with: --key-file {path}   (or {KEY_ENV}=<its content> in its environment)")
    return key, path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m solutions.distributed", description=__doc__.splitlines()[0]
    )
    roles = parser.add_subparsers(dest="role", required=True)
    m = roles.add_parser("master", help="serve the queues, put tasks, print the results")
    m.add_argument("--host", default="127.0.0.1", help="address to bind ('' = every interface)")
    m.add_argument("--port", type=int, default=0, help="port to bind (0 = a free one, printed)")
    m.add_argument("--tasks", type=int, default=10, help="how many random tasks")
    m.add_argument("--delay", type=float, default=0.0, help="seconds between two tasks")
    m.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait for each result (the note: 10)"
    )
    m.add_argument("--start-method", choices=multiprocessing.get_all_start_methods())
    w = roles.add_parser("worker", help="connect to a master and answer its tasks")
    w.add_argument("--host", required=True, help="the master's address")
    w.add_argument("--port", type=int, required=True, help="the master's port")
    w.add_argument("--idle", type=float, default=1.0, help="leave when no task comes for this long")
    w.add_argument("--delay", type=float, default=0.0, help="seconds of work per task (the note: 1)")
    for role in (m, w):
        role.add_argument("--key-file", help=f"file holding the key as hex (else ${KEY_ENV})")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """DIST-12, DIST-14: the command line; errors become one line on stderr and exit status 1."""
    args = _parser().parse_args(argv)
    made = None
    try:
        if args.role == "master":
            if args.start_method:
                multiprocessing.set_start_method(args.start_method, force=True)
            key, made = _master_key(args.key_file)
            numbers = [random.randint(0, 10000) for _ in range(args.tasks)]
            master(key, numbers, args.host, args.port, args.timeout, args.delay, _say)
        else:
            key = load_key(key_file=args.key_file)
            if key is None:
                print(f"worker: no key: set {KEY_ENV} (hex) or pass --key-file FILE", file=sys.stderr)
                return 2
            worker(key, args.host, args.port, args.idle, args.delay, _say)
    except (OSError, ValueError, multiprocessing.AuthenticationError) as exc:
        print(f"{args.role}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        if made:
            os.remove(made)
    return 0


if __name__ == "__main__":
    sys.exit(main())
