"""Tests of spec/04-subprocess.md: call, run, Popen.communicate, text mode, timeouts, no shell.

Real programs only: the kata's look-up program (``solutions/lookup.py``, the
stand-in for ``nslookup``) and the current interpreter with a one-line script.
Every call of the learner's code runs in a ``testing.Background`` thread with
a bound, so a call that hangs fails with its spec ID instead of the per-test
timeout; a stub raises at once. The start method is irrelevant here: these
tests are not parametrised by it. Each test starts one program (the demo
three), under every start method alike.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import psutil
import pytest

from kata import testing

#: Output of the look-up for www.python.org and of the MX look-up for python.org (the table's).
CNAME = "www.python.org\tcanonical name = python.map.fastly.net."
MX = b"python.org\tmail exchanger = 50 mail.python.org."
MISSING = "kata-no-such-program-7f3c"


@pytest.fixture
def subp(impl):
    return impl("subprocess_io")


@pytest.fixture
def lookup(impl) -> list[str]:
    """The command that runs the kata's lookup program (the package's own copy, by path)."""
    return [sys.executable, os.path.abspath(impl("lookup").module.__file__)]


def py(code: str, *args: str) -> list[str]:
    """A real program: this interpreter running ``code`` with ``args``."""
    return [sys.executable, "-c", code, *args]


def bounded(func, *args, what: str):
    """Call the learner's ``func(*args)`` in a thread; fail with the spec ID if it hangs."""
    __tracebackhide__ = True
    return testing.Background(func, *args).result(what)


def as_text(value) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value or "")


def raised(func, *args, what: str) -> BaseException | None:
    """What ``func(*args)`` raised (None if it returned), with a bound."""
    __tracebackhide__ = True
    try:
        bounded(func, *args, what=what)
    except (Exception, subprocess.SubprocessError) as exc:
        return exc
    return None


# --------------------------------------------------------------------- SUBP-1


@pytest.mark.spec("SUBP-1")
def test_call_returns_zero_and_the_program_writes_to_our_stdout(subp, lookup, capfd):
    code = bounded(subp.call, [*lookup, "www.python.org"], what="call() to return")
    out = capfd.readouterr().out
    assert code == 0, f"call() returned {code!r} for a look-up that succeeds (expected its exit code, 0)"
    assert CNAME in out, f"the program's answer should reach our stdout (call captures nothing); got:\n{out}"


@pytest.mark.spec("SUBP-1")
@pytest.mark.parametrize(
    ("args", "expected"),
    [(["nosuch.example"], 1), (None, 3)],
    ids=["lookup_not_found", "sys_exit_3"],
)
def test_call_returns_a_non_zero_exit_code(subp, lookup, capfd, args, expected):
    cmd = [*lookup, *args] if args else py("import sys; sys.exit(3)")
    code = bounded(subp.call, cmd, what="call() to return")
    capfd.readouterr()
    assert code == expected, (
        f"call() returned {code!r}; the program exited with {expected} "
        "(call returns the program's exit code as it is)"
    )


# --------------------------------------------------------------------- SUBP-2


@pytest.mark.spec("SUBP-2")
def test_run_checked_returns_the_output_as_text(subp, lookup):
    out = bounded(subp.run_checked, [*lookup, "www.python.org"], what="run_checked() to return")
    assert isinstance(out, str), f"run_checked() returned {type(out).__name__}, expected str (text=True)"
    assert CNAME in out, f"run_checked() should return what the program printed; got:\n{out}"


@pytest.mark.spec("SUBP-2")
def test_run_checked_raises_called_process_error_with_code_and_output(subp):
    cmd = py("import sys; print('partial answer'); print('it went wrong', file=sys.stderr); sys.exit(4)")
    exc = raised(subp.run_checked, cmd, what="run_checked() to return or raise")
    if not isinstance(exc, subprocess.CalledProcessError):
        testing.fail(
            f"expected subprocess.CalledProcessError for a program that exited with 4, got "
            f"{type(exc).__name__ if exc else 'no exception'} (use check=True; do not catch the error)"
        )
    assert exc.returncode == 4, f"CalledProcessError.returncode is {exc.returncode!r}, expected 4"
    assert "partial answer" in as_text(exc.stdout), (
        f"CalledProcessError.stdout is {exc.stdout!r}: capture the output (capture_output=True) "
        "so the error carries what the program printed"
    )
    assert "it went wrong" in as_text(exc.stderr), f"CalledProcessError.stderr is {exc.stderr!r}"


# --------------------------------------------------------------------- SUBP-3


@pytest.mark.spec("SUBP-3")
def test_communicate_with_lookup_as_the_note_does(subp, lookup):
    out, err, code = bounded(subp.communicate, lookup, b"set q=mx\npython.org\nexit\n", what="communicate()")
    assert isinstance(out, bytes) and isinstance(err, bytes), (
        f"communicate() returned {type(out).__name__} and {type(err).__name__}, expected bytes and bytes"
    )
    assert MX in out, f"the MX answer should be in stdout; got:\n{as_text(out)}"
    assert err == b"", f"nothing should come on stderr; got {err!r}"
    assert code == 0, f"returncode was {code!r}, expected 0 (None: the child was not waited for)"


@pytest.mark.spec("SUBP-3")
def test_communicate_feeds_stdin_and_returns_both_outputs_and_the_code(subp):
    cmd = py(
        "import sys; data = sys.stdin.buffer.read(); sys.stdout.buffer.write(data.upper());"
        " sys.stderr.write('read %d bytes' % len(data)); sys.exit(5)"
    )
    got = bounded(subp.communicate, cmd, b"hello\nworld\n", what="communicate()")
    expected = (b"HELLO\nWORLD\n", b"read 12 bytes", 5)
    assert tuple(got) == expected, (
        f"communicate() returned {got!r}, expected {expected!r}: (stdout, stderr, returncode) "
        "of a program that upper-cases its stdin, counts it on stderr and exits with 5"
    )


@pytest.mark.spec("SUBP-3")
def test_communicate_does_not_deadlock_on_a_megabyte(subp):
    data = b"x" * 63 + b"\n"
    data *= (1 << 20) // len(data)
    cmd = py("import shutil, sys; shutil.copyfileobj(sys.stdin.buffer, sys.stdout.buffer)")
    got = bounded(
        subp.communicate,
        cmd,
        data,
        what="communicate() of 1 MiB through a program that echoes as it reads (writing all of stdin "
        "before reading stdout deadlocks once the output pipe is full: use Popen.communicate)",
    )
    out, _, code = got
    assert out == data and code == 0, f"echoed {len(out)} of {len(data)} bytes, exit code {code!r}"


@pytest.mark.spec("SUBP-9")
def test_the_real_nslookup_answers_in_the_same_shape(subp):
    cmd = ["nslookup", "-timeout=2", "-retry=1"]
    try:  # the learner's communicate() is called first: a stub fails here, nslookup or not
        out, _, code = bounded(subp.communicate, cmd, b"set q=mx\npython.org\nexit\n", what="nslookup")
    except FileNotFoundError:
        pytest.skip("nslookup is not installed here; the kata's lookup program stands in for it")
    text = as_text(out)
    if "mail exchanger" not in text:
        pytest.skip(f"DNS does not answer here (nslookup exit code {code}): {testing.cut(text)}")
    assert "python.org" in text and code == 0, text


# --------------------------------------------------------------------- SUBP-4


@pytest.mark.spec("SUBP-4")
def test_text_mode_takes_and_returns_str(subp):
    cmd = py(
        "import sys; data = sys.stdin.read(); sys.stdout.write(data.upper());"
        " sys.stderr.write('read %d characters' % len(data))"
    )
    got = bounded(subp.communicate_text, cmd, "hello\nworld\n", what="communicate_text()")
    expected = ("HELLO\nWORLD\n", "read 12 characters", 0)
    assert tuple(got) == expected, f"communicate_text() returned {got!r}, expected {expected!r} (text=True)"


@pytest.mark.spec("SUBP-4")
def test_text_mode_reads_crlf_as_newline(subp):
    cmd = py(r"import sys; sys.stdout.buffer.write(b'one\r\ntwo\r\n')")
    out, _, _ = bounded(subp.communicate_text, cmd, "", what="communicate_text()")
    assert out == "one\ntwo\n", (
        f"communicate_text() returned {out!r} for the bytes b'one\\r\\ntwo\\r\\n'; text mode reads "
        "line endings as '\\n' (expected 'one\\ntwo\\n'): use text=True rather than decoding yourself"
    )


# --------------------------------------------------------------------- SUBP-5


def _descendants() -> dict[int, str]:
    try:
        kids = psutil.Process().children(recursive=True)
    except psutil.Error:
        return {}
    seen = {}
    for kid in kids:
        try:
            seen[kid.pid] = kid.status()
        except psutil.Error:
            continue
    return seen


@pytest.mark.spec("SUBP-5")
def test_timeout_raises_and_leaves_no_child(subp):
    before = set(_descendants())
    forever = py("import threading; threading.Event().wait()")  # blocks until killed
    exc = raised(
        subp.run_with_timeout,
        forever,
        0.2,
        what="run_with_timeout(<a program that never ends>, 0.2) to raise TimeoutExpired",
    )
    left = {pid: status for pid, status in _descendants().items() if pid not in before}
    if not isinstance(exc, subprocess.TimeoutExpired):
        testing.fail(
            f"expected subprocess.TimeoutExpired after 0.2 s, got {type(exc).__name__ if exc else 'a return'}"
        )
    assert not left, (
        "after TimeoutExpired the child is still there: "
        + ", ".join(f"PID {pid} ({status})" for pid, status in left.items())
        + " (running: kill it; zombie: wait for it after killing; subprocess.run does both)"
    )


@pytest.mark.spec("SUBP-5")
def test_a_quick_program_finishes_within_the_timeout(subp):
    done = bounded(subp.run_with_timeout, py("print('quick')"), testing.WAIT, what="run_with_timeout()")
    assert done.returncode == 0 and as_text(done.stdout) == "quick\n", (
        f"expected returncode 0 and the captured output 'quick\\n', got {done.returncode!r}, {done.stdout!r}"
    )


# --------------------------------------------------------------------- SUBP-6


@pytest.mark.spec("SUBP-6")
def test_a_missing_program_raises_file_not_found(subp, capfd):
    exc = raised(subp.call, [MISSING, "www.python.org"], what="call() to raise")
    err = capfd.readouterr().err
    if not isinstance(exc, FileNotFoundError):
        got = f"{type(exc).__name__}: {exc}" if exc else "a return"
        shell = " (a shell ran it: 'not found', exit 127)" if "not found" in err else ""
        testing.fail(f"expected FileNotFoundError for the program {MISSING!r}, got {got}{shell}")
    assert MISSING in str(exc.filename), f"FileNotFoundError.filename is {exc.filename!r}"


# --------------------------------------------------------------------- SUBP-7


@pytest.mark.spec("SUBP-7")
def test_a_name_with_a_semicolon_is_one_argument(subp, lookup, capfd):
    name = "www.python.org; echo INJECTED"
    code = bounded(subp.call, [*lookup, name], what="call() to return")
    out = capfd.readouterr().out
    assert "INJECTED" not in out.splitlines(), (
        f"the shell split {name!r} at ';' and ran `echo INJECTED`: pass the list to subprocess "
        "as it is, without shell=True"
    )
    assert f"can't find {name}" in out and code == 1, (
        f"the look-up should get {name!r} as one name (not found, exit code 1); "
        f"exit code {code!r}, output:\n{out}"
    )


@pytest.mark.spec("SUBP-7")
def test_arguments_arrive_exactly_as_given(subp, capfd):
    args = ["a name with spaces", 'it\'s "quoted"', "$HOME", "*", ""]
    code = bounded(subp.call, py("import json, sys; print(json.dumps(sys.argv[1:]))", *args), what="call()")
    out = capfd.readouterr().out
    try:
        got = json.loads(out)
    except ValueError:
        got = None
    assert got == args and code == 0, (
        f"the program should receive {args!r}, one argument each; it received "
        f"{got if got is not None else 'nothing readable'} (exit code {code!r}, output {out!r}): "
        "no shell, no joining"
    )


# --------------------------------------------------------------------- SUBP-8


@pytest.mark.spec("SUBP-8")
def test_demo_prints_the_two_transcripts(demo):
    run = demo("subprocess_io")
    assert run.returncode == 0, f"the demo exited with {run.returncode}:\n{testing.cut(run.stderr)}"
    server = ["Server:\t\t127.0.0.1", "Address:\t127.0.0.1#53", ""]
    expected = [
        "$ lookup www.python.org",
        *server,
        "Non-authoritative answer:",
        CNAME,
        "Name:\tpython.map.fastly.net",
        "Address: 199.27.79.223",
        "",
        "Exit code: 0",
        "$ lookup",
        *server,
        "Non-authoritative answer:",
        MX.decode(),
        "",
        "Authoritative answers can be found from:",
        "mail.python.org\tinternet address = 82.94.164.166",
        "mail.python.org\thas AAAA address 2001:888:2000:d::a6",
        "",
        "",
        "Exit code: 0",
    ]
    lines = run.stdout.splitlines()
    assert lines == expected, "the demo printed:\n" + run.stdout + "\nexpected:\n" + "\n".join(expected)
