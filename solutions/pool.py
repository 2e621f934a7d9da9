"""multiprocessing.Pool: a fixed number of workers, tasks queue for them (spec/03-pool.md).

Run ``python -m solutions.pool [--start-method M]`` for the note's 5-task
transcript and a timeline of which worker ran what. Tasks are module-level
functions, so spawn and forkserver can pickle them; delays are parameters.
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from multiprocessing import Pool
from multiprocessing.pool import AsyncResult
from multiprocessing.pool import Pool as PoolType

#: The note's tasks slept ``random.random() * 3`` s; the demo keeps its numbers, scaled down.
NOTE_DELAYS = (0.251, 0.268, 0.189, 0.094, 0.014)


def _say(line: str) -> None:
    """Print ``line`` in one write: lines of several workers sharing stdout never mix.

    (``print`` writes the text and the newline separately; unbuffered, as under
    ``PYTHONUNBUFFERED=1``, another process can write in between.)
    """
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def long_time_task(name: int, delay: float = 0.0) -> tuple[int, int, float, float]:
    """POOL-10: the note's task: say who runs it, work for ``delay`` seconds, say how long it took.

    Returns ``(name, pid, start, end)`` (``time.time()`` values) for the demo's timeline.
    """
    _say(f"Run task {name} ({os.getpid()})...")
    start = time.time()
    time.sleep(delay)  # sleep-ok: the task's work, as in the note (the demo's delays are short)
    end = time.time()
    _say(f"Task {name} runs {end - start:0.2f} seconds.")
    return name, os.getpid(), start, end


def run_tasks(
    task: Callable[[int], object],
    count: int = 5,
    processes: int = 4,
    initializer: Callable[..., object] | None = None,
    initargs: tuple = (),
) -> list:
    """POOL-1, POOL-2, POOL-4, POOL-7: run ``task(0) … task(count-1)`` on ``Pool(processes)``.

    ``apply_async`` queues every task at once; at most ``processes`` run at a
    time. ``close()`` then ``join()`` waits until every task has ended. Returns
    the results in task order.
    """
    pool = Pool(processes, initializer, initargs)
    results = [pool.apply_async(task, args=(i,)) for i in range(count)]
    pool.close()
    pool.join()
    return [r.get() for r in results]


def default_pool_size() -> int:
    """POOL-3: how many workers ``Pool()`` starts when given no size.

    ``os.process_cpu_count()`` from Python 3.13 (the CPUs this process may
    run on), ``os.cpu_count()`` before (all CPUs of the machine); 1 if unknown.
    """
    if sys.version_info >= (3, 13):
        return os.process_cpu_count() or 1
    return os.cpu_count() or 1


def join_before_close(pool: PoolType) -> BaseException | None:
    """POOL-5: call ``join()`` on a pool that is still running; return what it raised (None if nothing)."""
    try:
        pool.join()
    except ValueError as exc:  # "Pool is still running": close() must come first
        return exc
    return None


def submit_after_close(pool: PoolType, task: Callable[..., object], args: tuple = ()) -> BaseException | None:
    """POOL-6: ``close()`` the pool, then ``apply_async(task, args)``; return what it raised, or None."""
    pool.close()
    try:
        pool.apply_async(task, args)
    except ValueError as exc:  # "Pool not running": a closed pool takes no new tasks
        return exc
    return None


def call_in_pool(pool: PoolType, task: Callable[..., object], args: tuple = ()) -> object:
    """POOL-8: run ``task(*args)`` in a worker, return its result; ``get()`` raises its exception here."""
    return pool.apply_async(task, args).get()


def map_in_order(
    task: Callable[[object], object],
    items: Iterable[object],
    processes: int = 2,
    initializer: Callable[..., object] | None = None,
    initargs: tuple = (),
) -> list:
    """POOL-7: ``pool.map(task, items)`` inside ``with Pool(...)``: results in the order of ``items``.

    ``map`` returns only when every result is in, whatever order the tasks
    ended in, so it is safe inside the ``with`` block (see POOL-9).
    """
    with Pool(processes, initializer, initargs) as pool:
        return pool.map(task, items)


def leave_with_block(
    task: Callable[..., object],
    args: tuple = (),
    initializer: Callable[..., object] | None = None,
    initargs: tuple = (),
    before_leaving: Callable[[], object] = lambda: None,
) -> AsyncResult:
    """POOL-9: the pitfall: ``apply_async`` inside ``with Pool(1)`` and leave the block without waiting.

    Leaving the block calls ``terminate()``, not ``close()`` + ``join()``: the
    running task is killed and its result never comes. Returns the
    ``AsyncResult``, which stays not ready. ``before_leaving()`` is called
    inside the block, after submitting (a test waits there for the task to start).
    """
    with Pool(1, initializer, initargs) as pool:
        result = pool.apply_async(task, args)
        before_leaving()
    return result


def _timeline(spans: Sequence[tuple[int, int, float, float]], step: float) -> list[str]:
    """One row per worker PID: each task's digit over the columns (of ``step`` s) it ran in.

    Then one line per task that had to wait for a busy worker: it ran in a PID
    that an earlier task had, and started only after that task ended.
    """
    t0 = min(start for _, _, start, _ in spans)
    end = max(stop for _, _, _, stop in spans)
    width = int((end - t0) / step) + 1
    by_pid: dict[int, list[tuple[int, float, float]]] = {}
    # spans come in task order: rows in the order of each worker's first task
    for name, pid, start, stop in spans:
        by_pid.setdefault(pid, []).append((name, start, stop))
    rows, waits = [], []
    for pid, tasks in by_pid.items():
        cells = [" "] * width
        for name, start, stop in tasks:
            for col in range(int((start - t0) / step), int((stop - t0) / step) + 1):
                cells[col] = str(name)[-1]
        rows.append(f"worker {pid:>7} |{''.join(cells)}|")
        tasks = sorted(tasks, key=lambda t: t[1])
        for (before, _, _), (name, _, _) in itertools.pairwise(tasks):
            waits.append(f"Task {name} waited: it ran in worker {pid} after task {before} ended there.")
    return rows + waits


def main(delays: Sequence[float] = NOTE_DELAYS, processes: int = 4, step: float = 0.02) -> None:
    """POOL-10: the note's transcript, then a timeline (one row per worker) where the 5th task waits."""
    print(f"Parent process {os.getpid()}.", flush=True)
    pool = Pool(processes)
    results = [pool.apply_async(long_time_task, args=(i, d)) for i, d in enumerate(delays)]
    print("Waiting for all subprocesses done...", flush=True)
    pool.close()
    pool.join()
    print("All subprocesses done.", flush=True)
    print(f"\nTimeline of Pool({processes}) ({step:g} s a column):")
    for row in _timeline([r.get() for r in results], step):
        print(row)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="The note's Pool(4) with 5 tasks.")
    parser.add_argument("--start-method", choices=multiprocessing.get_all_start_methods())
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the task delays (0: no delay)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = _parse(None)
    if args.start_method:
        multiprocessing.set_start_method(args.start_method)
    main(tuple(d * args.scale for d in NOTE_DELAYS), args.processes)
