"""Mutation testing of the reference solutions, through the kata's own ``--solutions`` option.

Run from the repository root::

    python benchmarks/mutate.py [MODULE ...] [-j 2] [--json FILE] [--fail-under PCT]
                                [--start-method fork] [--list] [--only TEXT] [-v]

For each module of ``solutions/`` that has tests (its topic's test file, from
the ``spec/`` headers; a helper module without a topic, like ``lookup.py``, is
tested by the topics whose module names it), it makes mutants with :mod:`ast`
and runs that topic's tests against each one::

    python -m pytest /abs/tests/test_<module>.py -q -x -p no:cacheprovider \\
        --solutions mutant --start-method fork --timeout 10 -p no:randomly

in a temporary directory that holds a copy of the package as ``mutant`` (the
mutated module written in, absolute ``from solutions... import`` rewritten to
``mutant`` as ``kata/stubs.py`` does), with ``KATA_WAIT=3`` and without
``PYTHONUNBUFFERED`` (which would hide every missing ``flush()``). A mutant is
*killed* when pytest exits 1 (a test failed), *timeout* when it overruns the
per-mutant wall limit (the process tree is killed; counted as killed),
*survived* when pytest exits 0, *invalid* when pytest exits 2-5 (interrupted,
internal or usage error, nothing collected: neither kills nor survivals).
Before mutating a module it checks that the unmutated copy passes (else the
module is skipped: "baseline failed") and that a copy broken on purpose is
killed (else the tool stops: the kata plugin is not loaded or ignores
``--solutions``).

Mutations: comparison swaps (== !=, < <=, > >=, in / not in, is / is not),
arithmetic swaps (+ -, * //, also in ``+=``), ``and``/``or``, ``not x`` -> ``x``,
numbers n -> n+1, True/False, strings to ``""`` and ``"XX" + s`` (f-strings
too, as a whole), ``return x`` -> ``return None``, a call statement -> ``pass``,
``if c`` -> ``if not c``, and the removal of each keyword argument of a call
(``timeout=``, ``daemon=``, ``flush=``...).

Not mutated: docstrings; ``if __name__ == "__main__":`` blocks; argparse
set-up (a function that builds an ``ArgumentParser``, or in ``main()`` the
statements that call the parser); type annotations; the text printed by
``main()`` (the positional arguments of its ``print`` calls: the note's
prose, fixed by a spec item only where a test reads the transcript by
pattern, so mutating it would either pad the score with easy kills or list
cosmetic survivors; the ``flush=`` of those calls *is* mutated); lines marked
``# pragma: no mutate``.

Score: (killed + timeout) / (killed + timeout + survived), per module and
overall, and the same with the *justified* survivors left out: equivalent
mutants listed, with a reason, in ``benchmarks/mutants-justified.txt``
(``module:line:description # reason``; the description is the one this tool
prints). ``--fail-under PCT`` checks the score without the justified ones.
The exit status is 0 whatever the score, 1 under ``--fail-under``, 2 when the
tool itself cannot run.

Why not mutmut: mutmut 3 imports one rewritten copy of the code in which each
function is a *trampoline* that picks the mutant to run from the
``MUTANT_UNDER_TEST`` variable on every call, in pytest processes it forks
itself, and records "trampoline hits" through its own initialised state. The
kata's tests run the code under test in processes mutmut did not set up:
``spawn`` and ``forkserver`` children that re-import the module from a pickled
reference, ``python -m`` demos, ``lookup.py`` run by path; its bookkeeping is
reported to fail in such processes (boxed/mutmut#338). (mutmut is not
installed here; not tried.) A real package per mutant, chosen with the
kata's own ``--solutions``, has nothing to get lost: every child imports the
mutant as plain source. It costs one pytest start per mutant (~1 s).
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures
import contextlib
import copy
import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kata import spec as specs  # noqa: E402
from kata.stubs import Source  # noqa: E402

SOLUTIONS = ROOT / "solutions"
REFERENCE = "solutions"
PACKAGE = "mutant"
JUSTIFIED = Path(__file__).resolve().parent / "mutants-justified.txt"
PRAGMA = "# pragma: no mutate"

COMPARE_SWAP: dict[type, type] = {
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}
BINOP_SWAP: dict[type, type] = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.FloorDiv,
    ast.FloorDiv: ast.Mult,
}
BOOL_SWAP: dict[type, type] = {ast.And: ast.Or, ast.Or: ast.And}
SYMBOL: dict[type, str] = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.In: "in",
    ast.NotIn: "not in",
    ast.Is: "is",
    ast.IsNot: "is not",
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.FloorDiv: "//",
    ast.And: "and",
    ast.Or: "or",
}
#: Calls that set up an argparse parser (not mutated).
ARGPARSE = {
    "ArgumentParser",
    "add_argument",
    "add_argument_group",
    "add_mutually_exclusive_group",
    "add_subparsers",
    "add_parser",
    "set_defaults",
    "parse_args",
    "parse_known_args",
}
#: Expressions that need no parentheses wherever an expression goes.
ATOMS = (
    ast.Name,
    ast.Attribute,
    ast.Call,
    ast.Constant,
    ast.Subscript,
    ast.List,
    ast.Tuple,
    ast.Dict,
    ast.Set,
)

# ---------------------------------------------------------------- mutants


@dataclass
class Mutant:
    """One mutation of one module, and what the tests made of it."""

    module: str
    line: int
    description: str
    original: str  # the changed source lines, before
    mutated: str  # and after
    start: int  # byte offsets of the replaced text in the module's source
    end: int
    replacement: str
    status: str = "pending"  # killed, timeout, survived, invalid
    killed_by: str = ""
    seconds: float = 0.0
    justification: str = ""

    @property
    def key(self) -> str:
        return f"{self.module}:{self.line}:{self.description}"

    def apply(self, source: str) -> str:
        data = source.encode("utf-8")
        return (data[: self.start] + self.replacement.encode("utf-8") + data[self.end :]).decode("utf-8")


class _Source(Source):
    """:class:`kata.stubs.Source`, with the spans and lines the mutator needs."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def span(self, node: ast.AST) -> tuple[int, int]:
        start = self.offset(node.lineno, node.col_offset)  # type: ignore[attr-defined]
        end = self.offset(node.end_lineno or node.lineno, node.end_col_offset or 0)  # type: ignore[attr-defined]
        return start, end

    def segment(self, node: ast.AST) -> str:
        start, end = self.span(node)
        return self.data[start:end].decode("utf-8")

    def line_of(self, offset: int) -> int:
        lo = 0
        while lo + 1 < len(self.starts) and self.starts[lo + 1] <= offset:
            lo += 1
        return lo + 1


def _lines_around(data: bytes, start: int, end: int) -> str:
    """The whole lines of ``data`` that hold bytes ``start``..``end`` (at most 3, stripped)."""
    first = data.rfind(b"\n", 0, start) + 1
    last = data.find(b"\n", max(end, start))
    lines = data[first : len(data) if last < 0 else last].decode("utf-8").splitlines() or [""]
    shown = [ln.strip() for ln in lines[:3]]
    if len(lines) > 3:
        shown.append("...")
    return "\n".join(shown)


def _short(text: str, width: int = 24) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def _is_docstring_owner(node: ast.AST) -> bool:
    return isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))


def _is_main_guard(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.If)
        and isinstance(node.test, ast.Compare)
        and isinstance(node.test.left, ast.Name)
        and node.test.left.id == "__name__"
        and len(node.test.comparators) == 1
        and isinstance(node.test.comparators[0], ast.Constant)
        and node.test.comparators[0].value == "__main__"
    )


def _call_name(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def _calls_argparse(node: ast.AST, names: Iterable[str] = ARGPARSE) -> bool:
    wanted = set(names)
    return any(isinstance(n, ast.Call) and _call_name(n) in wanted for n in ast.walk(node))


def _not_mutated(tree: ast.Module) -> set[int]:
    """``id()`` of every node that no mutation may touch (see the module docstring)."""
    roots: list[ast.AST] = []
    for node in ast.walk(tree):
        if _is_docstring_owner(node):
            body = node.body  # type: ignore[attr-defined]
            first = body[0] if body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                roots.extend([first] if isinstance(first.value.value, str) else [])
        if _is_main_guard(node):
            roots.append(node)
        if isinstance(node, ast.arg) and node.annotation is not None:
            roots.append(node.annotation)
        if isinstance(node, ast.AnnAssign):
            roots.append(node.annotation)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if node.returns is not None:
                roots.append(node.returns)
            if node.name != "main" and _calls_argparse(node, {"ArgumentParser"}):
                roots.append(node)  # a parser-building helper: argparse set-up
            if node.name == "main":
                for stmt in ast.walk(node):
                    if (
                        isinstance(stmt, ast.stmt)
                        and not isinstance(stmt, _COMPOUND)
                        and _calls_argparse(stmt)
                    ):
                        roots.append(stmt)
                    if isinstance(stmt, ast.Call) and _call_name(stmt) == "print":
                        roots.extend(stmt.args)  # the demo's prose
        if isinstance(node, ast.JoinedStr):
            roots.extend(node.values)  # an f-string is mutated as a whole
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            roots.append(node)
    return {id(n) for root in roots for n in ast.walk(root)}


_COMPOUND = (
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.ClassDef,
    ast.If,
    ast.For,
    ast.AsyncFor,
    ast.While,
    ast.With,
    ast.AsyncWith,
    ast.Try,
)


def find_mutants(module: str, text: str) -> tuple[list[Mutant], int]:
    """The mutants of one module's source, and how many candidates were dropped (invalid or no-ops)."""
    tree = ast.parse(text)
    src = _Source(text)
    lines = text.splitlines()
    skip = _not_mutated(tree)
    parents: dict[int, ast.AST] = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[id(child)] = node
    original_dump = ast.dump(tree)
    found: list[Mutant] = []
    seen: set[str] = set()
    dropped = 0

    def add(node: ast.AST, start: int, end: int, replacement: str, description: str, line: int = 0) -> None:
        nonlocal dropped
        line = line or node.lineno  # type: ignore[attr-defined]
        mutant = Mutant(module, line, description, "", "", start, end, replacement)
        new = mutant.apply(text)
        try:
            new_tree = ast.parse(new)
        except SyntaxError:
            dropped += 1
            return
        if new in seen or ast.dump(new_tree) == original_dump:
            dropped += 1
            return
        seen.add(new)
        mutant.original = _lines_around(src.data, start, end)
        mutant.mutated = _lines_around(new.encode("utf-8"), start, start + len(replacement.encode("utf-8")))
        found.append(mutant)

    def expr(node: ast.AST, replacement: str, description: str, atom: bool = False) -> None:
        start, end = src.span(node)
        parent = parents.get(id(node))
        if not atom and isinstance(parent, (ast.BoolOp, ast.BinOp, ast.UnaryOp, ast.Compare)):
            replacement = f"({replacement})"
        add(node, start, end, replacement, description)

    for node in ast.walk(tree):
        if id(node) in skip or not hasattr(node, "lineno"):
            continue
        if PRAGMA in lines[node.lineno - 1]:  # type: ignore[attr-defined]
            continue
        if isinstance(node, ast.Compare):
            for i, op in enumerate(node.ops):
                if type(op) in COMPARE_SWAP:
                    new = copy.deepcopy(node)
                    new.ops[i] = COMPARE_SWAP[type(op)]()
                    expr(node, ast.unparse(new), f"compare: {SYMBOL[type(op)]} -> {SYMBOL[type(new.ops[i])]}")
        elif isinstance(node, ast.BinOp) and type(node.op) in BINOP_SWAP:
            new = copy.deepcopy(node)
            new.op = BINOP_SWAP[type(node.op)]()
            expr(node, ast.unparse(new), f"arith: {SYMBOL[type(node.op)]} -> {SYMBOL[type(new.op)]}")
        elif isinstance(node, ast.AugAssign) and type(node.op) in BINOP_SWAP:
            new = copy.deepcopy(node)
            new.op = BINOP_SWAP[type(node.op)]()
            start, end = src.span(node)
            add(
                node,
                start,
                end,
                ast.unparse(new),
                f"arith: {SYMBOL[type(node.op)]}= -> {SYMBOL[type(new.op)]}=",
            )
        elif isinstance(node, ast.BoolOp):
            new = copy.deepcopy(node)
            new.op = BOOL_SWAP[type(node.op)]()
            expr(node, ast.unparse(new), f"bool: {SYMBOL[type(node.op)]} -> {SYMBOL[type(new.op)]}")
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            operand = src.segment(node.operand)
            if not isinstance(node.operand, ATOMS):
                operand = f"({operand})"
            expr(node, operand, f"not: drop `not` of {_short(operand)}")
        elif isinstance(node, ast.Constant):
            _constant(node, expr)
        elif isinstance(node, ast.JoinedStr):
            segment = src.segment(node)
            expr(node, '""', f"string: {_short(segment)} -> ''", atom=True)
            expr(node, f'"XX" + {segment}', f"string: {_short(segment)} -> 'XX' + it")
        elif isinstance(node, ast.Return) and node.value is not None:
            if not (isinstance(node.value, ast.Constant) and node.value.value is None):
                start, end = src.span(node)
                add(node, start, end, "return None", f"return: {_short(src.segment(node.value))} -> None")
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            start, end = src.span(node)
            add(node, start, end, "pass", f"call: drop {_short(src.segment(node.value.func))}(...)")
        elif isinstance(node, ast.If):
            test = node.test
            if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
                continue  # `not x` -> `x` covers it
            if isinstance(test, ast.Compare) and len(test.ops) == 1 and type(test.ops[0]) in COMPARE_SWAP:
                continue  # the comparison swap is the same mutant
            segment = src.segment(test)
            wrapped = (
                segment
                if not isinstance(test, (ast.BoolOp, ast.IfExp, ast.Lambda, ast.NamedExpr))
                else f"({segment})"
            )
            start, end = src.span(test)
            add(test, start, end, f"not {wrapped}", f"if: negate {_short(segment)}")
        if isinstance(node, ast.Call):
            _keywords(node, src, add)

    # one description per line: number the repeats
    counts: dict[tuple[int, str], int] = {}
    found.sort(key=lambda m: (m.line, m.start, m.description))
    for mutant in found:
        n = counts[(mutant.line, mutant.description)] = counts.get((mutant.line, mutant.description), 0) + 1
        if n > 1:
            mutant.description += f" [{n}]"
    return found, dropped


def _constant(node: ast.Constant, expr: Callable[..., None]) -> None:
    value = node.value
    if isinstance(value, bool):
        expr(node, repr(not value), f"const: {value} -> {not value}", atom=True)
    elif isinstance(value, (int, float)):
        expr(node, repr(value + 1), f"const: {value!r} -> {value + 1!r}", atom=True)
    elif isinstance(value, str):
        if value:
            expr(node, '""', f"string: {_short(repr(value))} -> ''", atom=True)
        expr(node, repr("XX" + value), f"string: {_short(repr(value))} -> 'XX' + it", atom=True)
    elif isinstance(value, bytes):
        if value:
            expr(node, 'b""', f"bytes: {_short(repr(value))} -> b''", atom=True)
        expr(node, repr(b"XX" + value), f"bytes: {_short(repr(value))} -> b'XX' + it", atom=True)


def _keywords(call: ast.Call, src: _Source, add: Callable[..., None]) -> None:
    """One mutant per keyword argument of ``call``: the call without it."""
    elements = sorted([*call.args, *call.keywords], key=lambda n: (n.lineno, n.col_offset))
    for i, kw in enumerate(elements):
        if not isinstance(kw, ast.keyword) or kw.arg is None:
            continue
        k_start, k_end = src.span(kw)
        if i > 0:
            start, end = src.span(elements[i - 1])[1], k_end
        elif i + 1 < len(elements):
            start, end = k_start, src.span(elements[i + 1])[0]
        else:
            start, end = k_start, k_end
            rest = src.data[end:]
            stripped = rest.lstrip()
            if stripped.startswith(b","):
                end += len(rest) - len(stripped) + 1
        add(kw, start, end, "", f"keyword: drop {kw.arg}=", line=kw.lineno)


# ---------------------------------------------------------------- modules


@dataclass
class ModulePlan:
    """A module to mutate, the test files that judge it, and its results."""

    name: str
    source: str
    tests: list[Path]
    mutants: list[Mutant] = field(default_factory=list)
    dropped: int = 0
    baseline: str = ""  # "" = passed; otherwise why the module was skipped
    baseline_seconds: float = 0.0

    def counts(self) -> dict[str, int]:
        out = {"mutants": len(self.mutants), "killed": 0, "timeout": 0, "survived": 0, "invalid": 0}
        out["justified"] = out["not_run"] = 0
        for m in self.mutants:
            if m.status in out:
                out[m.status] += 1
            if m.status == "not run":
                out["not_run"] += 1
            if m.status == "survived" and m.justification:
                out["justified"] += 1
        return out


def _code_strings(text: str) -> str:
    """The non-docstring string constants and imported module names of a module, joined."""
    tree = ast.parse(text)
    docs = {
        id(n.body[0].value)
        for n in ast.walk(tree)
        if _is_docstring_owner(n)
        and n.body  # type: ignore[attr-defined]
        and isinstance(n.body[0], ast.Expr)  # type: ignore[attr-defined]
    }
    parts = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            parts.append(node.value)
        elif isinstance(node, ast.ImportFrom):
            parts.append(f"{'.' * node.level}{node.module or ''}")
            parts.extend(a.name for a in node.names)
    return "\n".join(parts)


def plan_modules(names: list[str]) -> tuple[list[ModulePlan], list[str]]:
    """Modules to mutate (all with tests, or those named) and notes on the ones left out."""
    sources = {p.stem: p.read_text(encoding="utf-8") for p in sorted(SOLUTIONS.glob("*.py"))}
    topics = {t.module: t for t in specs.topics()}
    notes: list[str] = []
    unknown = [n for n in names if n not in sources]
    if unknown:
        raise SystemExit(
            f"mutate.py: no module {', '.join(unknown)} in solutions/ (have: {', '.join(sources)})"
        )
    plans = []
    for name in names or list(sources):
        if name == "__init__":
            continue
        tests: list[Path] = []
        if name in topics:
            tests = [ROOT / topics[name].tests]
        else:  # a helper module: judged by the topics whose module names it
            word = re.compile(rf"(^|[./\s]){re.escape(name)}(\.py)?($|\s)", re.M)
            tests = [
                ROOT / t.tests
                for module, t in topics.items()
                if module in sources and word.search(_code_strings(sources[module]))
            ]
        tests = [t for t in tests if t.exists()]
        if not tests:
            notes.append(f"{name}: no tests (no spec topic or test file names it); not mutated")
            continue
        plans.append(ModulePlan(name, sources[name], tests))
    return plans, notes


# ---------------------------------------------------------------- running


@dataclass
class Settings:
    start_method: str = "fork"
    test_timeout: float = 10
    mutant_timeout: float = 60
    wait: str = "3"
    verbose: bool = False


def rewrite_imports(text: str) -> str:
    """``from solutions.x import y`` / ``import solutions.x`` -> the mutant package."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return text
    src = _Source(text)
    edits = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == REFERENCE or node.module.startswith(REFERENCE + "."):
                edits.append(src.span(node))
        elif isinstance(node, ast.Import) and any(
            a.name == REFERENCE or a.name.startswith(REFERENCE + ".") for a in node.names
        ):
            edits.append(src.span(node))
    data = src.data
    for start, end in sorted(edits, reverse=True):
        old = data[start:end].decode("utf-8")
        new = re.sub(rf"\b{REFERENCE}(?=\.|\b)", PACKAGE, old)
        data = data[:start] + new.encode("utf-8") + data[end:]
    return data.decode("utf-8")


def write_package(where: Path, sources: dict[str, str], module: str, text: str) -> None:
    """The solutions package as ``where/mutant``, with ``module`` replaced by ``text``."""
    package = where / PACKAGE
    shutil.copytree(SOLUTIONS, package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name, original in sources.items():
        body = text if name == module else original
        (package / f"{name}.py").write_text(rewrite_imports(body), encoding="utf-8")


def _kill_tree(proc: subprocess.Popen) -> None:
    try:
        import psutil

        children = psutil.Process(proc.pid).children(recursive=True)
    except Exception:
        children = []
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signal.SIGKILL)
    for child in children:
        with contextlib.suppress(Exception):
            child.kill()


_FAILED = re.compile(r"^(?:FAILED|ERROR) (?:\S*?/)?(tests/\S+)", re.M)


def run_tests(
    sources: dict[str, str], module: str, text: str, tests: list[Path], settings: Settings
) -> tuple[str, str, float]:
    """Run ``tests`` against the package with ``module`` = ``text``: (status, first failing test, seconds)."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="kata-mutant-") as tmp:
        write_package(Path(tmp), sources, module, text)
        command = [
            sys.executable,
            "-m",
            "pytest",
            *map(str, tests),
            "-q",
            "-x",
            "-p",
            "no:cacheprovider",
            "--solutions",
            PACKAGE,
            "--start-method",
            settings.start_method,
            "--timeout",
            str(settings.test_timeout),
            "-p",
            "no:randomly",
        ]
        env = dict(os.environ, KATA_WAIT=settings.wait, PYTHONDONTWRITEBYTECODE="1")
        # PYTHONUNBUFFERED would make every demo's missing flush() invisible
        for name in ("KATA_SOLUTIONS", "KATA_START_METHOD", "PYTEST_ADDOPTS", "PYTHONUNBUFFERED"):
            env.pop(name, None)
        proc = subprocess.Popen(
            command,
            cwd=tmp,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            out, _ = proc.communicate(timeout=settings.mutant_timeout)
        except subprocess.TimeoutExpired:
            _kill_tree(proc)
            proc.communicate()
            return "timeout", f"(over {settings.mutant_timeout:g} s)", time.monotonic() - started
        _kill_tree(proc)  # anything a test left behind
    output = out.decode("utf-8", "replace")
    failed = _FAILED.search(output)
    first = failed.group(1) if failed else ""
    code = proc.returncode
    if code == 0:
        status = "survived"
    elif code in (2, 3, 4, 5):
        status = "invalid"
        first = first or (output.strip().splitlines() or [f"exit {code}"])[-1][:200]
    else:  # 1: a test failed; anything else (a crash, a signal) is a failure the suite caused too
        status = "killed"
        first = first or f"(pytest exit {code})"
    return status, first, time.monotonic() - started


BROKEN = '\nraise RuntimeError("benchmarks/mutate.py: a module broken on purpose")\n'


def check_module(plan: ModulePlan, sources: dict[str, str], settings: Settings) -> str:
    """Baseline (unmutated copy passes) and sanity (broken copy is killed) checks; "" when both hold."""
    status, first, seconds = run_tests(sources, plan.name, plan.source, plan.tests, settings)
    plan.baseline_seconds = seconds
    if status != "survived":
        return f"baseline failed: the unmutated copy gives {status} {first}".rstrip()
    status, first, _ = run_tests(sources, plan.name, plan.source + BROKEN, plan.tests, settings)
    if status not in ("killed", "timeout"):
        raise RuntimeError(
            f"a copy of {plan.name} broken on purpose was not killed ({status} {first}): "
            "the kata plugin is not loaded or --solutions is ignored"
        )
    return ""


# ---------------------------------------------------------------- justified


@dataclass
class Justification:
    module: str
    line: int
    description: str
    reason: str
    used: bool = False


def read_justified(path: Path) -> list[Justification]:
    """``module:line:description # reason`` lines; blank lines and ``#`` comments skipped."""
    found = []
    if not path.exists():
        return found
    for n, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        head, sep, reason = line.rpartition(" # ")
        parts = head.split(":", 2) if sep else []
        if len(parts) != 3 or not parts[1].strip().isdigit() or not reason.strip():
            raise SystemExit(f"mutate.py: {path.name}:{n}: expected 'module:line:description # reason'")
        found.append(Justification(parts[0].strip(), int(parts[1]), parts[2].strip(), reason.strip()))
    return found


def apply_justified(plans: list[ModulePlan], entries: list[Justification]) -> None:
    """Mark survivors listed in the allow-list (by module, line and description; else unique description)."""
    for plan in plans:
        survivors = [m for m in plan.mutants if m.status == "survived"]
        for entry in (e for e in entries if e.module == plan.name):
            exact = [m for m in survivors if m.line == entry.line and m.description == entry.description]
            moved = [m for m in survivors if m.description == entry.description]
            hit = exact or (moved if len(moved) == 1 else [])
            for m in hit:
                m.justification = entry.reason + ("" if exact else f" (listed at line {entry.line})")
                entry.used = True


# ---------------------------------------------------------------- report


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.rstrip("\n")
    except (OSError, subprocess.CalledProcessError):
        return ""


def score(killed: int, survived: int) -> float | None:
    return 100.0 * killed / (killed + survived) if killed + survived else None


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}%"


def totals(plans: list[ModulePlan]) -> dict[str, int]:
    total: dict[str, int] = {}
    for plan in plans:
        for key, value in plan.counts().items():
            total[key] = total.get(key, 0) + value
    return total


def scores(counts: dict[str, int]) -> tuple[float | None, float | None]:
    dead = counts.get("killed", 0) + counts.get("timeout", 0)
    survived = counts.get("survived", 0)
    return score(dead, survived), score(dead, survived - counts.get("justified", 0))


def render(plans: list[ModulePlan], notes: list[str], meta: dict) -> Iterator[str]:
    yield (
        f"mutate.py: solutions at {meta['commit'][:10]}"
        + (f" (uncommitted: {', '.join(meta['dirty'])})" if meta["dirty"] else "")
        + f", start method {meta['start_method']}, -j {meta['jobs']}"
    )
    head = (
        "module",
        "mutants",
        "killed",
        "timeout",
        "survived",
        "justified",
        "invalid",
        "score",
        "w/o just.",
    )
    yield "{:<14} {:>7} {:>6} {:>7} {:>8} {:>9} {:>7} {:>7} {:>9}".format(*head)
    rows = [(p.name, p.counts()) for p in plans if not p.baseline]
    rows.append(("overall", totals([p for p in plans if not p.baseline])))
    for name, c in rows:
        raw, adjusted = scores(c)
        yield "{:<14} {:>7} {:>6} {:>7} {:>8} {:>9} {:>7} {:>7} {:>9}".format(
            name,
            c["mutants"],
            c["killed"],
            c["timeout"],
            c["survived"],
            c["justified"],
            c["invalid"],
            _pct(raw),
            _pct(adjusted),
        )
    for plan in plans:
        if plan.baseline:
            yield f"{plan.name}: skipped, {plan.baseline}"
        elif plan.counts()["not_run"]:
            yield f"{plan.name}: {plan.counts()['not_run']} mutants not run (--budget reached or interrupted)"
    yield from notes
    c = totals([p for p in plans if not p.baseline])
    raw, adjusted = scores(c)
    dead = c.get("killed", 0) + c.get("timeout", 0)
    yield (
        f"score (killed+timeout)/(killed+timeout+survived) = {dead}/{dead + c.get('survived', 0)}"
        f" = {_pct(raw)};"
        f" leaving out {c.get('justified', 0)} justified (equivalent) survivors: {_pct(adjusted)}"
    )
    yield f"wall time {meta['wall_seconds']:.0f} s"
    for title, pick in (
        ("survivors (no test tells them from the reference)", lambda m: not m.justification),
        ("justified survivors (benchmarks/mutants-justified.txt)", lambda m: bool(m.justification)),
    ):
        chosen = [m for p in plans for m in p.mutants if m.status == "survived" and pick(m)]
        if chosen:
            yield ""
            yield f"{title}: {len(chosen)}"
        for m in chosen:
            yield f"  solutions/{m.module}.py:{m.line}: {m.description}" + (
                f"  # {m.justification}" if m.justification else ""
            )
            if not m.justification:
                yield from ("    - " + ln for ln in m.original.splitlines())
                yield from ("    + " + ln for ln in m.mutated.splitlines())
    invalid = [m for p in plans for m in p.mutants if m.status == "invalid"]
    if invalid:
        yield ""
        yield f"invalid (pytest exit 2-5): {len(invalid)}"
        for m in invalid:
            yield f"  solutions/{m.module}.py:{m.line}: {m.description}: {m.killed_by}"
    stale = meta.get("stale", [])
    if stale:
        yield ""
        yield f"allow-list entries that matched no survivor: {len(stale)}"
        yield from (f"  {s}" for s in stale)


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Mutation testing of solutions/ through --solutions.")
    parser.add_argument("modules", nargs="*", help="modules of solutions/ (default: all that have tests)")
    parser.add_argument("-j", "--jobs", type=int, default=2, help="mutants run at a time (default 2)")
    parser.add_argument("--json", metavar="FILE", help="write everything as JSON")
    parser.add_argument(
        "--fail-under", type=float, metavar="PCT", help="exit 1 if the score w/o justified is lower"
    )
    parser.add_argument("--start-method", default="fork", help="passed to the suite (default fork)")
    parser.add_argument(
        "--test-timeout", type=float, default=10, help="pytest --timeout per test (default 10)"
    )
    parser.add_argument(
        "--mutant-timeout", type=float, default=60, help="wall limit per mutant (default 60 s)"
    )
    parser.add_argument("--wait", default="3", help="KATA_WAIT for the tests' bounded waits (default 3)")
    parser.add_argument("--justified", type=Path, default=JUSTIFIED, help="allow-list of equivalent mutants")
    parser.add_argument(
        "--only", metavar="TEXT", help="run only mutants whose 'module:line:description' has TEXT"
    )
    parser.add_argument(
        "--budget", type=float, metavar="S", help="start no mutant after S seconds; report what ran"
    )
    parser.add_argument(
        "--report", type=Path, metavar="JSON", help="run nothing: report a --json file again (new allow-list)"
    )
    parser.add_argument("--list", action="store_true", help="list the mutants, run nothing")
    parser.add_argument("-v", "--verbose", action="store_true", help="a line per mutant as it finishes")
    return parser.parse_args(argv)


_stop = threading.Event()


def _stop_running(signum: int, frame: object) -> None:
    """SIGINT/SIGTERM: start no more mutants; the ones running finish and everything is reported."""
    _stop.set()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _stop_running)
    signal.signal(signal.SIGINT, _stop_running)
    started = time.monotonic()
    settings = Settings(args.start_method, args.test_timeout, args.mutant_timeout, args.wait, args.verbose)
    if args.report:
        plans, notes, meta = load_report(args.report)
        return finish(plans, notes, meta, args)
    plans, notes = plan_modules(args.modules)
    sources = {p.stem: p.read_text(encoding="utf-8") for p in sorted(SOLUTIONS.glob("*.py"))}
    for plan in plans:
        sources[plan.name] = plan.source  # the snapshot measured, whatever changes on disk meanwhile
        plan.mutants, plan.dropped = find_mutants(plan.name, plan.source)
        if args.only:
            plan.mutants = [m for m in plan.mutants if args.only in m.key]
    if args.list:
        for plan in plans:
            for m in plan.mutants:
                print(f"{m.key}\n    - {m.original.splitlines()[0]}\n    + {m.mutated.splitlines()[0]}")
            print(f"{plan.name}: {len(plan.mutants)} mutants ({plan.dropped} candidates dropped)")
        return 0
    commit = _git("rev-parse", "HEAD")
    dirty = [
        ln[3:]
        for ln in _git("status", "--porcelain", "--", "solutions", "tests").splitlines()
        if ln[3:].endswith(".py")
    ]
    plans = [p for p in plans if p.mutants]
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            checks = {pool.submit(check_module, p, sources, settings): p for p in plans}
            for future in concurrent.futures.as_completed(checks):
                checks[future].baseline = future.result()
                print(f"{checks[future].name}: {checks[future].baseline or 'baseline ok'}", file=sys.stderr)
            deadline = started + args.budget if args.budget else None

            def run_unless_stopped(plan: ModulePlan, m: Mutant) -> tuple[str, str, float]:
                if _stop.is_set() or (deadline is not None and time.monotonic() > deadline):
                    return "not run", "", 0.0
                return run_tests(sources, plan.name, m.apply(plan.source), plan.tests, settings)

            jobs = {
                pool.submit(run_unless_stopped, p, m): m for p in plans if not p.baseline for m in p.mutants
            }
            for done, future in enumerate(concurrent.futures.as_completed(jobs), 1):
                m = jobs[future]
                m.status, m.killed_by, m.seconds = future.result()
                if settings.verbose:
                    print(f"[{done}/{len(jobs)}] {m.key}: {m.status} {m.killed_by}", file=sys.stderr)
                elif done % 25 == 0:
                    print(f"[{done}/{len(jobs)}] {time.monotonic() - started:.0f} s", file=sys.stderr)
    except RuntimeError as exc:
        print(f"mutate.py: {exc}", file=sys.stderr)
        return 2
    meta = {
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "commit": commit,
        "dirty": dirty,
        "start_method": args.start_method,
        "jobs": args.jobs,
        "wall_seconds": time.monotonic() - started,
    }
    return finish(plans, notes, meta, args)


def load_report(path: Path) -> tuple[list[ModulePlan], list[str], dict]:
    """The plans, notes and run facts of a JSON report written by ``--json``."""
    data = json.loads(path.read_text(encoding="utf-8"))
    fields = {f.name for f in dataclasses.fields(Mutant)}
    plans = []
    for name, module in data["modules"].items():
        plan = ModulePlan(name, "", [ROOT / t for t in module["tests"]])
        plan.baseline = "" if module["baseline"] == "ok" else module["baseline"]
        plan.baseline_seconds = module.get("baseline_seconds", 0.0)
        plan.dropped = module.get("dropped_candidates", 0)
        for m in module["mutants"]:
            given = {k: v for k, v in m.items() if k in fields}
            plan.mutants.append(
                Mutant(**{"start": 0, "end": 0, "replacement": "", **given, "justification": ""})
            )
        plans.append(plan)
    meta = {k: data[k] for k in ("command", "commit", "dirty", "start_method", "jobs", "wall_seconds")}
    return plans, data.get("notes", []), meta


def finish(plans: list[ModulePlan], notes: list[str], meta: dict, args: argparse.Namespace) -> int:
    """Apply the allow-list, print the report, write the JSON; the exit status."""
    entries = read_justified(args.justified)
    apply_justified(plans, entries)
    names = {p.name for p in plans if not p.baseline}
    meta["stale"] = [
        f"{e.module}:{e.line}:{e.description}"
        for e in entries
        if not e.used and e.module in names and not args.only
    ]
    for line in render(plans, notes, meta):
        print(line)
    c = totals([p for p in plans if not p.baseline])
    raw, adjusted = scores(c)
    if args.json:
        data = dict(meta)
        data["overall"] = dict(c, score=raw, score_without_justified=adjusted)
        data["notes"] = notes
        data["modules"] = {
            p.name: {
                "tests": [str(t.relative_to(ROOT)) for t in p.tests],
                "baseline": p.baseline or "ok",
                "baseline_seconds": round(p.baseline_seconds, 2),
                "dropped_candidates": p.dropped,
                **p.counts(),
                "score": scores(p.counts())[0],
                "score_without_justified": scores(p.counts())[1],
                "mutants": [
                    {
                        k: v
                        for k, v in dataclasses.asdict(m).items()
                        if k not in ("start", "end", "replacement")
                    }
                    | {"seconds": round(m.seconds, 2)}
                    for m in p.mutants
                ],
            }
            for p in plans
        }
        Path(args.json).write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"JSON written to {args.json}")
    if args.fail_under is not None and (adjusted is None or adjusted < args.fail_under):
        print(f"mutate.py: score {_pct(adjusted)} is under {args.fail_under:g}%", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
