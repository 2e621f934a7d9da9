"""Read the specification: ``spec/NN-topic.md`` files, their items and hints.

A spec file starts with a title and three header lines that tie the topic's
three files together::

    # The fork system call
    - **topic:** `fork`
    - **module:** `solutions/fork.py`
    - **tests:** `tests/test_fork.py`

An item is a heading whose first word is its ID (``### FORK-1 — ...``); the
rest of the heading is the one-line behaviour. Its body holds bullet fields,
of which ``- **Hint:**`` is read by the tools. Nothing else in the prose counts.
"""

from __future__ import annotations

import ast
import difflib
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC_DIR = ROOT / "spec"
TESTS_DIR = ROOT / "tests"

ID_RE = re.compile(r"^[A-Z]{2,8}-[0-9]+$")
_ITEM_RE = re.compile(r"^#{2,4}\s+([A-Z]{2,8}-[0-9]+)\b\s*[—:-]*\s*(.*)$")
_HEADER_RE = re.compile(r"^- \*\*(topic|module|tests):\*\*\s*`([^`]+)`")
_FIELD_RE = re.compile(r"^- \*\*([^*:]+):\*\*\s*(.*)$")


@dataclass(frozen=True)
class Item:
    """One spec item: its ID, one-line behaviour and fields (``Hint``, ...)."""

    id: str
    title: str
    topic: str
    fields: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    @property
    def hint(self) -> str:
        return self.fields.get("Hint", "")

    @property
    def hint_line(self) -> str:
        """The hint's first sentence-line, for one-line failure messages."""
        return self.hint.strip().splitlines()[0] if self.hint.strip() else ""


@dataclass(frozen=True)
class Topic:
    """A topic: the spec file and the names of its solution and test modules."""

    name: str
    title: str
    path: Path
    module: str  # module name inside the solutions package, e.g. "queue_ipc"
    tests: str  # test file, relative to the project root
    items: tuple[Item, ...]

    @property
    def ids(self) -> list[str]:
        return [item.id for item in self.items]


def parse_topic(path: Path) -> Topic:
    """Parse one spec file into a :class:`Topic`."""
    lines = path.read_text(encoding="utf-8").splitlines()
    title = next((ln.lstrip("# ").strip() for ln in lines if ln.startswith("# ")), path.stem)
    header: dict[str, str] = {}
    for line in lines:
        m = _HEADER_RE.match(line)
        if m:
            header.setdefault(m.group(1), m.group(2))
    name = header.get("topic") or path.stem.split("-", 1)[-1]
    module = Path(header.get("module", f"solutions/{name}.py")).stem
    tests = header.get("tests", f"tests/test_{module}.py")

    items: list[Item] = []
    current: tuple[str, str] | None = None
    fields: dict[str, str] = {}
    last_field = ""
    in_fence = False

    def flush() -> None:
        if current:
            items.append(Item(current[0], current[1], name, dict(fields)))

    for line in lines:
        if line.startswith("```"):
            in_fence = not in_fence
        if in_fence:
            if current and last_field:
                fields[last_field] += "\n" + line
            continue
        m = _ITEM_RE.match(line)
        if m:
            flush()
            current, fields, last_field = (m.group(1), m.group(2).strip()), {}, ""
            continue
        if line.startswith("#"):
            flush()
            current, fields, last_field = None, {}, ""
            continue
        if current is None:
            continue
        f = _FIELD_RE.match(line)
        if f:
            last_field = f.group(1).strip()
            fields[last_field] = f.group(2).strip()
        elif last_field and line.strip():
            fields[last_field] += "\n" + line.strip()
        elif last_field and not line.strip():
            fields[last_field] += "\n"
    flush()
    for key in ("Hint",):
        for item in items:
            if key in item.fields:
                item.fields[key] = item.fields[key].strip()
    return Topic(name, title, path, module, tests, tuple(items))


@cache
def topics(spec_dir: Path = SPEC_DIR) -> tuple[Topic, ...]:
    """Every topic, in the order of the spec files' numbers."""
    return tuple(parse_topic(p) for p in sorted(spec_dir.glob("[0-9][0-9]-*.md")))


def items() -> dict[str, Item]:
    """Every spec item by ID, in spec order."""
    return {item.id: item for topic in topics() for item in topic.items}


def topic_named(name: str) -> Topic | None:
    """The topic with this name or solution-module name (``queue`` or ``queue_ipc``)."""
    for topic in topics():
        if name in (topic.name, topic.module):
            return topic
    return None


def closest(name: str, choices: list[str]) -> str:
    """A ``did you mean`` suffix for an unknown name, or ``""``."""
    near = difflib.get_close_matches(name, choices, n=3, cutoff=0.5)
    return f" (did you mean {', '.join(near)}?)" if near else ""


def markers_in_tests(tests_dir: Path = TESTS_DIR) -> dict[str, set[str]]:
    """Spec IDs named by ``pytest.mark.spec(...)`` in each test file, read from source.

    Read with :mod:`ast` rather than by collecting, so that the traceability
    check sees every test, whatever the run selected.
    """
    found: dict[str, set[str]] = {}
    for path in sorted(tests_dir.glob("test_*.py")):
        ids: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "spec"
            ):
                ids.update(
                    arg.value
                    for arg in node.args
                    if isinstance(arg, ast.Constant) and isinstance(arg.value, str)
                )
        found[path.name] = ids
    return found
