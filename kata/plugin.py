"""The kata's pytest plugin: implementation choice, start methods, containment, reports.

Loaded by the project's ``conftest.py`` (and by ``kata check`` with ``-p``).

Options (all also settable by environment, for tox and CI):

``--solutions PKG`` / ``KATA_SOLUTIONS``
    The package whose modules are under test (default ``solutions``, the
    reference). A package that does not import stops the run with one line.
``--start-method M[,M...]`` / ``KATA_START_METHOD``
    ``fork``, ``forkserver``, ``spawn`` or ``all`` (default: all that this
    platform has). Tests that take the ``start_method`` fixture run once per
    method, the method in the test id: ``test_exitcode[spawn]``.
``--spec ID-or-topic[,...]``
    Run only the tests of these spec IDs or topics (``FORK-3``, ``pool``).
``--kata-json FILE``
    Write the conformance report as JSON (schema: ``spec/README.md``).
``--kata-brief``
    Print the kata's own summary instead of pytest's failure sections
    (used by ``kata check``).

Fixtures: ``impl`` (load a topic's module), ``start_method`` (parametrised;
sets the global start method and restores it), and the autouse
``_kata_containment`` (reaps leaked processes and threads, fails the test that
leaked them). Marker: ``@pytest.mark.spec("FORK-1", ...)``.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from kata import learner, report, testing
from kata import spec as specs

ALL_METHODS = ("fork", "forkserver", "spawn")

#: The PID of the process running the tests; any other PID inside a test is a
#: forked child that came back and must not go on.
_SESSION_PID = os.getpid()

#: A warning CPython 3.12+ gives when forking a process that has threads
#: (pytest-xdist's and the kata's own helper threads). Filtered here only.
FORK_WARNING = r"ignore:This process \(pid=\d+\) is multi-threaded, use of fork\(\):DeprecationWarning"

_solutions_key = pytest.StashKey[str]()
_methods_key = pytest.StashKey[tuple]()
_report_key = pytest.StashKey[report.Conformance]()
_call_failed_key = pytest.StashKey[bool]()


# --------------------------------------------------------------------- options


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("kata", "concurrency kata")
    group.addoption(
        "--solutions",
        default=os.environ.get("KATA_SOLUTIONS", "solutions"),
        metavar="PKG",
        help="package under test (default: $KATA_SOLUTIONS or 'solutions', the reference)",
    )
    group.addoption(
        "--start-method",
        default=os.environ.get("KATA_START_METHOD", "all"),
        metavar="M",
        help="fork, forkserver, spawn, a comma list, or all (default: $KATA_START_METHOD or all)",
    )
    group.addoption(
        "--spec",
        default="",
        metavar="IDS",
        help="run only these spec IDs or topics, comma-separated (e.g. FORK-3,pool)",
    )
    group.addoption("--kata-json", default=None, metavar="FILE", help="write the JSON report")
    group.addoption(
        "--kata-brief",
        action="store_true",
        help="short kata summary instead of pytest's failure sections",
    )


def available_methods() -> tuple[str, ...]:
    """Start methods this platform has, in the kata's order."""
    have = set(multiprocessing.get_all_start_methods())
    return tuple(m for m in ALL_METHODS if m in have)


def selected_methods(value: str) -> tuple[str, ...]:
    """Parse ``--start-method``; raise ``UsageError`` for an unknown or missing method."""
    have = available_methods()
    if value.strip() in ("", "all"):
        return have
    chosen = tuple(dict.fromkeys(m.strip() for m in value.split(",") if m.strip()))
    for method in chosen:
        if method not in ALL_METHODS:
            raise pytest.UsageError(
                f"kata: unknown start method {method!r}{specs.closest(method, list(ALL_METHODS))};"
                f" choose from {', '.join(ALL_METHODS)} or all"
            )
        if method not in have:
            raise pytest.UsageError(
                f"kata: start method {method!r} is not available on {sys.platform}"
                f" (this platform has: {', '.join(have)})"
            )
    return chosen


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "spec(*ids): the spec items this test checks")
    config.addinivalue_line("filterwarnings", FORK_WARNING)
    config.stash[_methods_key] = selected_methods(config.getoption("start_method"))
    package = config.getoption("solutions")
    try:
        learner.import_package(package)
    except learner.LoadError as exc:
        raise pytest.UsageError(f"kata: {exc}") from None
    config.stash[_solutions_key] = package
    config.stash[_report_key] = report.Conformance(solutions=package, methods=config.stash[_methods_key])
    _become_subreaper()
    # Children and programs get Python's default buffering, as on a learner's machine:
    # with PYTHONUNBUFFERED inherited (CI often sets it) a missing flush() would go unseen.
    os.environ.pop("PYTHONUNBUFFERED", None)


def _become_subreaper() -> None:
    """On Linux, adopt orphaned grandchildren so the reaper can find and stop them."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass


# ----------------------------------------------------------------- collection


def spec_ids(item: pytest.Item) -> tuple[str, ...]:
    """Spec IDs named by the item's ``spec`` markers, in order."""
    ids: list[str] = []
    for mark in item.iter_markers("spec"):
        ids.extend(a for a in mark.args if a not in ids)
    return tuple(ids)


def item_method(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("start_method") if callspec else None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "start_method" in metafunc.fixturenames:
        methods = metafunc.config.stash[_methods_key]
        metafunc.parametrize("start_method", methods, indirect=True, ids=list(methods))


def _expand_selection(value: str) -> set[str]:
    """``--spec`` words (IDs or topic names) to a set of IDs; ``UsageError`` if unknown."""
    known = specs.items()
    chosen: set[str] = set()
    for word in (w.strip() for w in value.split(",")):
        if not word:
            continue
        topic = specs.topic_named(word)
        if topic:
            chosen.update(topic.ids)
        elif word.upper() in known:
            chosen.add(word.upper())
        else:
            names = list(known) + [t.name for t in specs.topics()]
            raise pytest.UsageError(f"kata: unknown spec ID or topic {word!r}{specs.closest(word, names)}")
    return chosen


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    known = specs.items()
    unknown = sorted({i for item in items for i in spec_ids(item) if i not in known})
    if unknown:
        raise pytest.UsageError(f"kata: tests name spec IDs that no spec file defines: {', '.join(unknown)}")
    wanted = _expand_selection(config.getoption("spec"))
    if wanted:
        keep = [item for item in items if wanted & set(spec_ids(item))]
        dropped = [item for item in items if item not in keep]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
        items[:] = keep


# ------------------------------------------------------------------- fixtures


@pytest.fixture
def start_method(request: pytest.FixtureRequest) -> Iterator[str]:
    """The start method of this run of the test; set globally, restored after.

    Learner code written like the note (``from multiprocessing import Process``)
    picks it up. Parametrised by ``--start-method``.
    """
    method = getattr(request, "param", None) or request.config.stash[_methods_key][0]
    previous = multiprocessing.get_start_method(allow_none=True)
    multiprocessing.set_start_method(method, force=True)
    try:
        yield method
    finally:
        multiprocessing.set_start_method(previous, force=True)


@pytest.fixture
def impl(request: pytest.FixtureRequest) -> Callable[[str], learner.Guarded]:
    """``impl("pool")``: the topic's module from the package under test, guarded.

    Takes a topic name or a module name. A module that does not import fails
    the test with the file, line and error, not the run.
    """
    package = request.config.stash[_solutions_key]

    def load(name: str) -> learner.Guarded:
        topic = specs.topic_named(name)
        module = topic.module if topic else name
        try:
            return learner.Guarded(learner.load(package, module))
        except learner.LoadError as exc:
            testing.fail(str(exc))

    return load


@pytest.fixture
def demo(request: pytest.FixtureRequest) -> Callable[..., subprocess.CompletedProcess]:
    """``demo("fork", *args)``: run ``python -m <package>.<module> *args`` as a real program.

    Returns the finished process (text output). Bounded by ``timeout``
    (default ``testing.WAIT``): on overrun the program is killed and the test
    fails with its spec IDs. ``input`` feeds stdin; ``env`` adds variables.
    """
    package = request.config.stash[_solutions_key]

    def run(
        name: str,
        *args: str,
        timeout: float = testing.WAIT,
        input: str | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess:
        topic = specs.topic_named(name)
        module = f"{package}.{topic.module if topic else name}"
        return testing.run_program(
            [sys.executable, "-m", module, *args],
            f"`python -m {module}` to finish",
            timeout=timeout,
            input=input,
            env=learner.child_env(package, env),
        )

    return run


@pytest.fixture(autouse=True)
def _kata_containment(request: pytest.FixtureRequest) -> Iterator[None]:
    """Per test: stop and reap every process and thread the test leaves behind.

    A leak fails the test that made it (when it had passed otherwise). The
    multiprocessing helpers that live for the whole run (the forkserver and
    the resource tracker) are not leaks; their other children are.
    """
    from kata import reaper

    before = reaper.snapshot()
    yield
    leaks = reaper.clean_up(before)
    if leaks and not request.node.stash.get(_call_failed_key, False):
        testing.fail("the test left these running (now stopped): " + "; ".join(leaks))


# ---------------------------------------------------------------- running


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    # Failures in fixtures (a stub called in setup) carry this test's IDs too.
    testing.current_ids = spec_ids(item)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    testing.current_ids = spec_ids(item)
    try:
        return (yield)
    finally:
        if os.getpid() != _SESSION_PID:
            learner.real_exit(learner.RETURNED_CHILD)  # a forked child must never run pytest on


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[pytest.TestReport]:
    rep: pytest.TestReport = yield
    if os.getpid() != _SESSION_PID:
        learner.real_exit(learner.RETURNED_CHILD)
    ids = spec_ids(item)
    rep.user_properties.append(("spec", " ".join(ids)))
    rep.user_properties.append(("start_method", item_method(item) or ""))
    if rep.when == "call" and rep.failed:
        item.stash[_call_failed_key] = True
    if rep.failed and ids:
        crash = getattr(rep.longrepr, "reprcrash", None)
        if crash is not None and not crash.message.startswith(ids[0]):
            crash.message = f"[{', '.join(ids)}] {crash.message}"
        known = specs.items()
        lines = [f"{i} — {known[i].title}\n  hint: {known[i].hint_line}" for i in ids if i in known]
        lines.append(f"  (kata hint {ids[0]} for the whole hint)")
        rep.sections.append(("kata spec", "\n".join(lines)))
    return rep


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    config = _config
    if config is not None and not hasattr(config, "workerinput"):
        config.stash[_report_key].add(report)


_config: pytest.Config | None = None


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    global _config
    _config = session.config
    testing.current_ids = ()
    if sys.platform != "win32":
        # The kata installs no SIGTERM handler; make sure nothing inherited one.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


# -------------------------------------------------------------------- reports


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        return
    conformance = config.stash[_report_key]
    if not conformance.tests:
        return
    brief = config.getoption("kata_brief")
    for line in conformance.render(brief=brief):
        terminalreporter.write_line(line)
    path = config.getoption("kata_json")
    if path:
        conformance.write_json(path)
        terminalreporter.write_line(f"kata: JSON report written to {path}")


# ------------------------------------------------------------------ shutdown

_exitstatus: int = 0


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    global _exitstatus
    _exitstatus = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """Leave even if learner code left a non-daemon thread running.

    Python joins such threads at exit, so one that never ends would hang the
    run after its summary (the test that left it has already failed for it).
    """
    import threading

    stuck = [t for t in threading.enumerate() if not t.daemon and t is not threading.main_thread()]
    if stuck and os.getpid() == _SESSION_PID:
        sys.stdout.flush()
        sys.stderr.flush()
        learner.real_exit(_exitstatus)  # not os._exit: a stuck guarded call may have it swapped
