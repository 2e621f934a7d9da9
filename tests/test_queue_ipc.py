"""Tests of spec/05-queue.md: sentinel, terminate(), queue.Empty, drain before join, Pipe, JoinableQueue.

Tests that start processes run once per start method. Children report on
queues; a reader that must be busy when it is terminated waits at a gate
(kata/probes/queue_ipc.py). Learner functions that block run in a
``testing.Background`` thread, so every wait is bounded.

Process starts per test (the same under every start method): QUEUE-1 2,
QUEUE-2 2, QUEUE-3 0, QUEUE-4 1, QUEUE-5 1, QUEUE-6 0 and 1, QUEUE-7 one
interpreter + 2, and 1 (8 per start method, the demo aside).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.process
import os
import queue
import re
import signal
import sys
from typing import Any

import pytest

from kata import testing
from kata.probes import queue_ipc as probes

#: Bytes a child puts in QUEUE-4: far more than any default pipe buffer (64 KiB on Linux).
BIG = 4 * 1024 * 1024

#: How long QUEUE-4 lets the wrong order (join before get) wait to show that it hangs.
PEEK = 0.2


@pytest.fixture
def queue_ipc(impl, start_method):
    return impl("queue")


def lines_from(log: Any, count: int, what: str) -> list[str]:
    return [testing.get(log, f"{what} (line {i + 1} of {count})") for i in range(count)]


def unjoined() -> set:
    """The processes this process started and has not joined (nor polled as ended).

    ``join()`` takes a process out of this set; nothing else does in these tests
    (``active_children()``, ``start()`` would take out the ones that ended), so a
    process left in it after a learner function returned was not joined.
    """
    return set(multiprocessing.process._children)


# ------------------------------------------------------------------ QUEUE-1


@pytest.mark.spec("QUEUE-1")
def test_sentinel_ends_the_reader_after_every_value(queue_ipc):
    log = multiprocessing.Queue()
    before = unjoined()
    run = testing.Background(queue_ipc.run_writer_and_reader, ("A", "B", "C"), log)
    codes = run.result("both processes to end: the reader must stop by itself at the sentinel")
    left = unjoined() - before
    writer, reader = codes if isinstance(codes, tuple) and len(codes) == 2 else (None, None)
    if reader == -signal.SIGTERM:
        testing.fail("the reader was terminated (exitcode -15): it should stop by itself at the sentinel")
    assert (writer, reader) == (0, 0), f"(writer, reader) exit codes were {codes!r}, expected (0, 0)"
    assert not left, f"run_writer_and_reader() returned without joining {left}: join() both processes"
    lines = lines_from(log, 8, "the writer's and the reader's lines")
    got = [m[1] for m in map(re.compile(r"Get (.*) from queue\.").fullmatch, lines) if m]
    assert got == ["A", "B", "C"], f"the reader got {got}, expected A, B, C in order (lines: {lines})"
    put = [m[1] for m in map(re.compile(r"Put (.*) to queue\.\.\.").fullmatch, lines) if m]
    assert put == ["A", "B", "C"], f"the writer put {put}: {lines}"
    assert sum(bool(re.fullmatch(r"Process to (write|read): \d+", ln)) for ln in lines) == 2, lines


# ------------------------------------------------------------------ QUEUE-2


@pytest.mark.spec("QUEUE-2")
@pytest.mark.skipif(os.name != "posix", reason="signal numbers as exit codes are POSIX")
def test_terminate_gives_minus_sigterm_and_loses_unread_items(queue_ipc):
    q, got, gate = multiprocessing.Queue(), multiprocessing.Queue(), multiprocessing.Semaphore(0)
    writer = multiprocessing.Process(target=probes.put_all, args=(q, ["A", "B", "C"]))
    reader = multiprocessing.Process(target=probes.read_one_then_wait, args=(q, got, gate))
    writer.start()
    reader.start()
    first = testing.get(got, "the reader to get its first item")
    # The reader is now busy with A, held at its gate; B and C are put but not read.
    code = testing.Background(queue_ipc.stop_like_the_note, writer, reader).result(
        "stop_like_the_note() to join the writer and terminate the reader"
    )
    left = unjoined()  # before is_alive(), which would take an ended process out
    assert writer not in left, "stop_like_the_note() did not join the writer: the note's pw.join()"
    assert reader not in left, "stop_like_the_note() did not join the reader after terminate(): join() it"
    assert not reader.is_alive(), "the reader is still alive: terminate() it, then join() it"
    assert code == -signal.SIGTERM, f"the reader's exitcode was {code!r}, expected -15 (-signal.SIGTERM)"
    left = [testing.get(q, "B and C, which the reader never read") for _ in range(2)]
    assert (first, left) == ("A", ["B", "C"]), (first, left)
    gate.release()


# ------------------------------------------------------------------ QUEUE-3


@pytest.mark.spec("QUEUE-3")
def test_get_with_timeout_raises_queue_empty(impl):
    import queue

    queue_ipc = impl("queue")
    q = multiprocessing.Queue()
    try:
        try:
            nothing = queue_ipc.get_or_none(q, 0.05)
        except (NameError, AttributeError) as exc:
            testing.fail(
                f"get_or_none raised {exc!r} on timeout: the exception is queue.Empty (import queue)"
            )
        assert nothing is None, f"get_or_none on an empty queue returned {nothing!r}, expected None"
        q.put("x")
        item = queue_ipc.get_or_none(q, testing.WAIT)
        assert item == "x", f"get_or_none returned {item!r}, expected the item that was put"
        with pytest.raises(queue.Empty):  # the fact the spec states
            q.get(timeout=0.01)
    finally:
        q.close()
        q.join_thread()


# ------------------------------------------------------------------ QUEUE-4


def _stuck_in_join(bg: testing.Background, q: Any) -> str | None:
    """ "ended", "stuck" (in Process.join while the data is still unread) or None."""
    if not bg.thread.is_alive():
        return "ended"
    frame = sys._current_frames().get(bg.thread.ident)
    while frame is not None:
        code = frame.f_code
        if code.co_name == "join" and code.co_filename.replace("\\", "/").endswith(
            "multiprocessing/process.py"
        ):
            return "stuck" if not q.empty() else None
        frame = frame.f_back
    return None


@pytest.mark.spec("QUEUE-4")
def test_drain_before_join(queue_ipc):
    q = multiprocessing.Queue()
    p = multiprocessing.Process(target=probes.put_big, args=(q, BIG))
    p.start()
    data = None
    try:
        testing.until(lambda: not q.empty(), "the child to start writing its data")
        p.join(PEEK)  # the wrong order: join before the data is read
        assert p.is_alive() and p.exitcode is None, (
            f"the child ended (exitcode {p.exitcode}) before its {BIG} bytes were read"
        )
        bg = testing.Background(queue_ipc.drain_then_join, p, q)
        state = testing.until(lambda: _stuck_in_join(bg, q), "drain_then_join() to return")
        if state == "stuck":
            testing.fail(
                "drain_then_join() waits in p.join() while the child's data is still in the queue: "
                "the child cannot end until its data is read — get() first, then join()"
            )
        data = bg.result("drain_then_join() to return")
        assert p not in unjoined(), "drain_then_join() returned the item without joining the child"
    finally:
        if data is None:  # the test failed: read the data so that the child can end
            with contextlib.suppress(Exception):
                q.get(timeout=testing.WAIT)
        testing.join(p, "the child to end once its data was read")
    assert isinstance(data, bytes) and len(data) == BIG, "drain_then_join() should return the child's item"
    assert p.exitcode == 0, f"the child's exitcode was {p.exitcode!r}, expected 0"


# ------------------------------------------------------------------ QUEUE-5


@pytest.mark.spec("QUEUE-5")
def test_pipe_both_ways(queue_ipc):
    before = unjoined()
    replies = testing.Background(queue_ipc.talk, ["ping", "pong", "done"]).result("talk() to return")
    left = unjoined() - before
    assert replies == ["PING", "PONG", "DONE"], (
        f"talk() returned {replies!r}: each message should come back from the child upper-cased, in order"
    )
    assert not left, f"talk() returned without joining its child {left}: send None, then join() it"


# ------------------------------------------------------------------ QUEUE-6


@pytest.mark.spec("QUEUE-6")
def test_join_waits_for_every_task_done(impl):
    queue_ipc = impl("queue")
    q = multiprocessing.JoinableQueue()
    bg = testing.Background(queue_ipc.put_and_join, q, ["A", "B", "C"])
    try:
        items = [bg.next(q, f"put_and_join() to put item {i + 1}") for i in range(3)]
        assert items == ["A", "B", "C"], items
        q.task_done()
        q.task_done()
        # Every item taken, one not done: join() must still wait.
        bg.parked_in("join", "multiprocessing/queues.py", "q.join() while one item is not done")
        q.task_done()
        bg.result("put_and_join() to return after the last task_done()")
    finally:
        with contextlib.suppress(ValueError):
            q.task_done()  # in case the test failed before the last one
        bg.thread.join(testing.WAIT)


@pytest.mark.spec("QUEUE-6")
def test_worker_calls_task_done_for_each_item(queue_ipc):
    q, results = multiprocessing.JoinableQueue(), multiprocessing.Queue()
    worker = multiprocessing.Process(target=queue_ipc.module.work, args=(q, results))
    worker.start()
    for item in ("a", "b", None):
        q.put(item)
    testing.join(worker, "work() to stop at the sentinel")
    assert worker.exitcode == 0, f"work() ended with exitcode {worker.exitcode}"
    handled = [testing.get(results, "work() to put its results")]
    handled.append(testing.get(results, "work() to put its results"))
    assert handled == ["A", "B"], handled
    testing.Background(q.join).result(
        "q.join() to return: work() must call task_done() once per get(), the sentinel's too"
    )


# ------------------------------------------------------------------ QUEUE-7
@pytest.mark.spec("QUEUE-7")
def test_lines_are_flushed_as_they_are_written(queue_ipc, tmp_path):
    """write()'s lines are in its process's stdout (a block-buffered file) when write() returns."""
    queue_ipc.write(queue.SimpleQueue(), ())  # a stub fails here, at once, not in the child
    out = tmp_path / "writer-stdout.txt"
    q, done, gate = multiprocessing.Queue(), multiprocessing.Semaphore(0), multiprocessing.Semaphore(0)
    args = (str(out), done, gate, queue_ipc.module.write, q, ("A",))
    child = multiprocessing.Process(target=probes.run_with_stdout, args=args)
    child.start()
    try:
        testing.until(lambda: done.acquire(False) or not child.is_alive(), "write(q, ('A',)) to return")
        if not child.is_alive():
            testing.fail(f"write(q, ('A',)) ended its process (exitcode {child.exitcode}), not returned")
        written = out.read_text(encoding="utf-8")  # the child is alive: only what it flushed is there
        items = [testing.get(q, "the value and the sentinel write() put") for _ in range(2)]
    finally:
        gate.release()
        testing.join(child, "the child to end once released")
    assert child.exitcode == 0, f"write() in a child ended with exitcode {child.exitcode}"
    assert items == ["A", None], f"write(q, ('A',)) put {items}, expected 'A' then the sentinel None"
    expected = [rf"Process to write: {child.pid}", r"Put A to queue\.\.\."]
    got = written.splitlines()
    assert len(got) == 2 and all(re.fullmatch(e, ln) for e, ln in zip(expected, got, strict=True)), (
        f"when write() returned, its process's stdout held {written!r}; expected lines matching "
        f"{expected}: write each line and flush it (sys.stdout.flush()), or it waits in the buffer and "
        "the two processes' lines come out in the wrong order"
    )


@pytest.mark.spec("QUEUE-7")
def test_demo_prints_the_transcript(demo, start_method):
    run = demo("queue", "--start-method", start_method, "--delay", "0.01")
    assert run.returncode == 0, f"the demo exited with {run.returncode}:\n{testing.cut(run.stderr)}"
    lines = run.stdout.splitlines()
    text = "\n".join(lines)
    shape = [re.sub(r"\d+", "N", ln) for ln in lines]
    expected = [
        "Process to write: N",
        "Put A to queue...",
        "Process to read: N",
        "Get A from queue.",
        "Put B to queue...",
        "Get B from queue.",
        "Put C to queue...",
        "Get C from queue.",
    ]
    assert sorted(shape) == sorted(expected), f"expected the note's 8 lines, each once:\n{text}"
    writer = [ln for ln in shape if ln.startswith(("Process to write", "Put"))]
    reader = [ln for ln in shape if ln.startswith(("Process to read", "Get"))]
    assert writer == [ln for ln in expected if ln in writer], f"the writer's lines out of order:\n{text}"
    assert reader == [ln for ln in expected if ln in reader], f"the reader's lines out of order:\n{text}"
    for value in "ABC":
        assert shape.index(f"Put {value} to queue...") < shape.index(f"Get {value} from queue."), text
