"""multiprocessing Queue and Pipe: passing data between processes (spec/05-queue.md).

Run ``python -m solutions.queue_ipc [--start-method M]`` for the note's
transcript: a writer puts A, B, C, a reader gets them. Unlike the note, the
writer ends with a sentinel and the reader stops there by itself, so nothing
is terminated and nothing is lost. Targets are module-level functions, so
spawn and forkserver can pickle them.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import queue
import sys
import time
from collections.abc import Iterable, Sequence
from multiprocessing import Pipe, Process, Queue
from multiprocessing.connection import Connection
from typing import Any

#: The note's values.
VALUES = ("A", "B", "C")

#: Put after the last value: "nothing more will come". Never a value itself.
SENTINEL = None


def _say(log: Any, line: str) -> None:
    """Report ``line``: put it on ``log`` (a Queue) when given, else print it in one write.

    One ``write`` per line, so the lines of two processes sharing stdout never mix.
    """
    if log is not None:
        log.put(line)
        return
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def write(q: Any, values: Iterable[Any] = VALUES, log: Any = None, delay: float = 0.0) -> None:
    """QUEUE-1: the note's writer: put each value on ``q``, then ``SENTINEL``.

    ``delay`` seconds after each put stand for the note's ``time.sleep(random.random())``.
    """
    _say(log, f"Process to write: {os.getpid()}")
    for value in values:
        _say(log, f"Put {value} to queue...")
        q.put(value)
        if delay:
            time.sleep(delay)  # sleep-ok: the writer's work between values, as in the note (demo only)
    q.put(SENTINEL)


def read(q: Any, log: Any = None) -> None:
    """QUEUE-1: the note's reader, fixed: get values until ``SENTINEL``, then return (exit code 0)."""
    _say(log, f"Process to read: {os.getpid()}")
    while True:
        value = q.get()
        if value is SENTINEL:
            return
        _say(log, f"Get {value} from queue.")


def run_writer_and_reader(
    values: Sequence[Any] = VALUES, log: Any = None, delay: float = 0.0
) -> tuple[int | None, int | None]:
    """QUEUE-1: ``write`` and ``read`` in two processes on one Queue; join both; return their exit codes.

    Nobody is terminated: the reader ends at the sentinel, so both codes are 0.
    """
    q = Queue()
    writer = Process(target=write, args=(q, values, log, delay))
    reader = Process(target=read, args=(q, log))
    writer.start()
    reader.start()
    writer.join()
    reader.join()
    return writer.exitcode, reader.exitcode


def stop_like_the_note(writer: Process, reader: Process) -> int | None:
    """QUEUE-2: the note's ending: join the writer, ``terminate()`` the reader, join it; return its exitcode.

    ``-signal.SIGTERM`` (-15). Whatever was put and not yet read is lost to
    the reader; a sentinel (QUEUE-1) is the fix.
    """
    writer.join()
    reader.terminate()
    reader.join()
    return reader.exitcode


def get_or_none(q: Any, timeout: float) -> Any:
    """QUEUE-3: ``q.get(timeout=timeout)``; None if nothing came in time.

    The exception is ``queue.Empty`` from the ``queue`` module (the note's
    ``Queue.Empty`` is a NameError, or an AttributeError after
    ``from multiprocessing import Queue``).
    """
    try:
        return q.get(timeout=timeout)
    except queue.Empty:
        return None


def drain_then_join(p: Process, q: Any) -> Any:
    """QUEUE-4: get the item the child ``p`` puts on ``q``, then join ``p``; return the item.

    In this order: a child that put more than a pipe buffer cannot end until
    its data has been read, so ``join()`` first would wait for ever.
    """
    item = q.get()
    p.join()
    return item


def echo_upper(conn: Connection) -> None:
    """QUEUE-5: in the child: receive each message, send it back upper-cased, until None; then close."""
    while (message := conn.recv()) is not None:
        conn.send(message.upper())
    conn.close()


def talk(messages: Iterable[str]) -> list[str]:
    """QUEUE-5: ``Pipe()`` both ways: send each message to a child running ``echo_upper``, receive each reply.

    Ends the child with None and joins it; returns the replies in order.
    """
    here, there = Pipe()  # duplex: both ends send and receive
    child = Process(target=echo_upper, args=(there,))
    child.start()
    there.close()  # the child has its own copy
    replies = []
    for message in messages:
        here.send(message)
        replies.append(here.recv())
    here.send(None)
    child.join()
    here.close()
    return replies


def work(q: Any, results: Any) -> None:
    """QUEUE-6: consumer of a JoinableQueue: handle each item, then ``task_done()``; stop at ``SENTINEL``.

    Handling an item puts it upper-cased on ``results``. Every ``get()``,
    the sentinel's too, is matched by one ``task_done()``.
    """
    while True:
        item = q.get()
        try:
            if item is SENTINEL:
                return
            results.put(item.upper())
        finally:
            q.task_done()


def put_and_join(q: Any, values: Iterable[Any]) -> None:
    """QUEUE-6: put each value on the JoinableQueue ``q``, then ``q.join()``.

    Returns only when a consumer has called ``task_done()`` once per value.
    """
    for value in values:
        q.put(value)
    q.join()


def main(delay: float = 0.05) -> None:
    """QUEUE-7: the note's transcript, with the sentinel ending."""
    run_writer_and_reader(VALUES, None, delay)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="The note's writer and reader on a Queue.")
    parser.add_argument("--start-method", choices=multiprocessing.get_all_start_methods())
    parser.add_argument("--delay", type=float, default=0.05, help="seconds the writer waits after each put")
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = _parse(None)
    if args.start_method:
        multiprocessing.set_start_method(args.start_method)
    main(args.delay)
