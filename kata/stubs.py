"""The stub generator behind ``kata init`` and ``kata reset``.

A learner's workspace is the reference package with the answers taken out,
generated from the reference's source with :mod:`ast` (never kept by hand), so
a topic added later gets its stubs with no change here. In each module:

* every public function (module level, or a method of a module-level class)
  keeps its signature, decorators and docstring; its body becomes
  ``raise NotImplementedError("<IDs>: <one-line behaviour>")``, the IDs being
  the docstring's first words (``\"\"\"POOL-3, POOL-4: ...\"\"\"``);
* ``_private`` helpers, functions nested in functions, constants, imports,
  classes' other contents, module-level code and the
  ``if __name__ == "__main__":`` block stay as they are;
* absolute imports of the reference package (``from solutions.fork import x``)
  become relative, so the workspace never runs the reference by accident.

The text is spliced, not unparsed: comments and layout outside the replaced
bodies survive.
"""

from __future__ import annotations

import ast
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from kata import spec as specs

#: The reference package: its directory and import name.
REFERENCE_DIR = specs.ROOT / "solutions"
REFERENCE = "solutions"

_LEADING_IDS = re.compile(r"^\s*((?:[A-Z]{2,8}-[0-9]+)(?:\s*(?:,|and)\s*[A-Z]{2,8}-[0-9]+)*)\s*:?\s*(.*)$")
_ANY_ID = re.compile(r"\b[A-Z]{2,8}-[0-9]+\b")


@dataclass(frozen=True)
class Stubbed:
    """One function the generator stubbed: where, and the message it raises."""

    qualname: str
    line: int
    ids: tuple[str, ...]
    message: str


def docstring_ids(doc: str | None) -> tuple[tuple[str, ...], str]:
    """The spec IDs a docstring starts with, and the rest of its first line.

    ``"POOL-3, POOL-4: start five tasks"`` gives ``(("POOL-3", "POOL-4"), "start five tasks")``.
    A docstring that does not start with IDs gives the IDs found anywhere in
    its first line (none if it names none) and the whole first line.
    """
    first = (doc or "").strip().splitlines()[0].strip() if (doc or "").strip() else ""
    m = _LEADING_IDS.match(first)
    if m:
        return tuple(_ANY_ID.findall(m.group(1))), m.group(2).strip()
    return tuple(dict.fromkeys(_ANY_ID.findall(first))), first


def stub_message(qualname: str, doc: str | None) -> tuple[tuple[str, ...], str]:
    """The IDs and the ``NotImplementedError`` text for a function with this docstring."""
    ids, behaviour = docstring_ids(doc)
    behaviour = behaviour or f"write {qualname}()"
    return ids, f"{', '.join(ids)}: {behaviour}" if ids else f"{qualname}: {behaviour}"


def _is_public(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    if not node.name.startswith("_"):
        return True
    # A dunder (``__init__``) is the learner's when its docstring names spec IDs.
    dunder = node.name.startswith("__") and node.name.endswith("__")
    return dunder and bool(docstring_ids(ast.get_docstring(node))[0])


def _targets(tree: ast.Module) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """Public functions of the module and public methods of its module-level classes."""
    functions = (ast.FunctionDef, ast.AsyncFunctionDef)
    for node in tree.body:
        if isinstance(node, functions) and _is_public(node):
            yield node.name, node
        elif isinstance(node, ast.ClassDef):
            for member in node.body:
                if isinstance(member, functions) and _is_public(member):
                    yield f"{node.name}.{member.name}", member


class Source:
    """Source text addressed the way :mod:`ast` does: line (1-based), UTF-8 byte column."""

    def __init__(self, text: str) -> None:
        self.data = text.encode("utf-8")
        self.starts = [0]
        for line in self.data.splitlines(keepends=True):
            self.starts.append(self.starts[-1] + len(line))

    def offset(self, line: int, col: int) -> int:
        return self.starts[line - 1] + col


def stub_source(text: str, package_depth: int = 1) -> tuple[str, list[Stubbed]]:
    """The stub of one reference module's source, and what was stubbed.

    ``package_depth`` is how deep the module sits in the reference package
    (1 for ``solutions/fork.py``), for turning absolute imports relative.
    """
    tree = ast.parse(text)
    src = Source(text)
    edits: list[tuple[int, int, bytes]] = []
    done: list[Stubbed] = []

    for qualname, node in _targets(tree):
        doc = ast.get_docstring(node)
        ids, message = stub_message(qualname, doc)
        done.append(Stubbed(qualname, node.lineno, ids, message))
        has_doc = doc is not None and isinstance(node.body[0], ast.Expr)
        rest = node.body[1:] if has_doc else node.body
        indent = node.body[0].col_offset
        raise_line = f"raise NotImplementedError({message!r})".encode()
        if rest:
            start = src.offset(rest[0].lineno, rest[0].col_offset)
            end = src.offset(rest[-1].end_lineno or rest[-1].lineno, rest[-1].end_col_offset or 0)
            edits.append((start, end, raise_line))
        else:  # the body is only the docstring: add the raise after it
            last = node.body[0]
            end = src.offset(last.end_lineno or last.lineno, last.end_col_offset or 0)
            edits.append((end, end, b"\n" + b" " * indent + raise_line))

    for node in ast.walk(tree):
        if (
            isinstance(node, ast.ImportFrom)
            and node.level == 0
            and node.module
            and (node.module == REFERENCE or node.module.startswith(REFERENCE + "."))
        ):
            start = src.offset(node.lineno, node.col_offset)
            end = src.offset(node.end_lineno or node.lineno, node.end_col_offset or 0)
            old = src.data[start:end].decode("utf-8")
            dots = "." * package_depth
            new = re.sub(rf"^from\s+{REFERENCE}(\.|\b)", f"from {dots}", old, count=1)
            edits.append((start, end, new.encode()))

    data = src.data
    for start, end, new in sorted(edits, reverse=True):
        data = data[:start] + new + data[end:]
    result = data.decode("utf-8")
    ast.parse(result)  # the stub must itself be valid Python
    return result, done


def reference_modules(reference: Path = REFERENCE_DIR) -> list[Path]:
    """Every module of the reference package, relative to it (``fork.py``, ``__init__.py``)."""
    found = (p.relative_to(reference) for p in reference.rglob("*.py"))
    return sorted(p for p in found if "__pycache__" not in p.parts)


def stub_file(relative: Path, reference: Path = REFERENCE_DIR) -> tuple[str, list[Stubbed]]:
    """The stub text of one reference module, by its path inside the package."""
    return stub_source((reference / relative).read_text(encoding="utf-8"), package_depth=len(relative.parts))


class WorkspaceError(Exception):
    """A workspace cannot be made or changed; the message is one line for the learner."""


#: Names a workspace may not take: they would shadow the kata, its tests or the reference.
RESERVED = {REFERENCE, "kata", "tests", "spec", "conftest"}

#: Where the CLI keeps the workspace's last reports (inside the workspace).
STATE_DIR = ".kata"


@dataclass
class Workspace:
    """What :func:`make_workspace` wrote: the modules, their stubs, and any backups."""

    path: Path
    written: list[Path] = field(default_factory=list)
    backups: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # reference modules that did not parse
    stubbed: dict[str, list[Stubbed]] = field(default_factory=dict)


def check_name(path: Path) -> str:
    """The package name of a workspace directory; :class:`WorkspaceError` if it cannot be one."""
    name = path.name
    if not name.isidentifier():
        raise WorkspaceError(
            f"{name!r} cannot be a Python package name (letters, digits and _, not starting with a digit)"
        )
    stdlib = getattr(sys, "stdlib_module_names", frozenset())
    if name in RESERVED or name in stdlib or name in sys.builtin_module_names:
        raise WorkspaceError(f"{name!r} would shadow a module of the same name; choose another, e.g. ws")
    return name


def backup(path: Path, stamp: str | None = None) -> Path:
    """Rename ``path`` to ``<name>.bak-<YYYYmmdd-HHMMSS>`` (a free name) and return the new path."""
    stamp = stamp or time.strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.bak-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.bak-{stamp}-{n}")
    path.rename(target)
    return target


def make_workspace(path: Path, force: bool = False, reference: Path = REFERENCE_DIR) -> Workspace:
    """Write the stub package of ``reference`` into ``path``, plus a README.md.

    An existing non-empty ``path`` is refused unless ``force``; then each file
    whose text differs from its new stub is kept as a ``.bak-<timestamp>`` copy.
    A reference module that does not parse (a topic being written) is skipped
    and named in :attr:`Workspace.skipped`.
    """
    check_name(path)
    if path.exists() and not path.is_dir():
        raise WorkspaceError(f"{path} exists and is not a directory")
    if path.is_dir() and any(path.iterdir()) and not force:
        raise WorkspaceError(
            f"{path}/ already exists; kata init will not overwrite it "
            f"(--force replaces every module, keeping changed ones as .bak files; "
            f"kata reset TOPIC restarts one topic)"
        )
    result = Workspace(path)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    files: dict[Path, str] = {}
    for relative in reference_modules(reference):
        try:
            text, done = stub_file(relative, reference)
        except SyntaxError as exc:
            result.skipped.append(f"{relative} (line {exc.lineno}: {exc.msg})")
            continue
        files[relative] = text
        result.stubbed[relative.with_suffix("").as_posix()] = done
    files[Path("README.md")] = README.format(name=path.name)
    for relative, text in files.items():
        target = path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            if target.read_text(encoding="utf-8") == text:
                continue
            result.backups.append(backup(target, stamp))
        target.write_text(text, encoding="utf-8")
        result.written.append(target)
    return result


def reset_module(path: Path, module: str, reference: Path = REFERENCE_DIR) -> tuple[Path, Path | None]:
    """Put the stub of ``module`` back into the workspace ``path``.

    The learner's file is kept as ``<module>.py.bak-<timestamp>`` (returned
    second; None when there was no file or it was already the stub).
    """
    relative = Path(f"{module}.py")
    if not (reference / relative).exists():
        raise WorkspaceError(f"the reference has no module {module!r} (solutions/{module}.py)")
    try:
        text, _ = stub_file(relative, reference)
    except SyntaxError as exc:
        raise WorkspaceError(f"solutions/{relative}, line {exc.lineno}: {exc.msg}; cannot stub it") from None
    target = path / relative
    kept = None
    if target.exists():
        if target.read_text(encoding="utf-8", errors="replace") == text:
            return target, None
        kept = backup(target)
    target.write_text(text, encoding="utf-8")
    return target, kept


README = """\
# {name}: your concurrency kata workspace

Made by `kata init` from the reference. Each module is one topic; each
function says in its docstring which spec items it serves, and raises
`NotImplementedError` until you write it.

Run these from the directory that contains `{name}/`:

    kata check --solutions {name}            # everything: the conformance table
    kata check fork --solutions {name}       # one topic (or one spec ID: FORK-3)
    kata hint FORK-3                         # the hint of one spec item
    kata list --solutions {name}             # topics, spec IDs, and which you pass
    kata watch --solutions {name}            # re-check a topic when you save its file
    kata reset fork --solutions {name}       # start a topic again (your file is kept as .bak)

Instead of `--solutions {name}` you can `export KATA_SOLUTIONS={name}`.
The specification of each topic is in the kata's `spec/` directory.
"""
