"""The conformance report: spec ID x start method, built from pytest's reports.

Fed by ``pytest_runtest_logreport`` (so it works the same under pytest-xdist,
where reports come from the workers). Rendered as a table at the end of the run
and, on request, as JSON (schema in ``spec/README.md``). Nothing in it depends
on timing or order of arrival, so the same results give the same text.
"""

from __future__ import annotations

import json
import platform
import sys
import sysconfig
from dataclasses import asdict, dataclass, field
from typing import Any

from kata import spec as specs

#: Captured output kept per test in the JSON report, and message lines shown.
OUTPUT_LIMIT = 2000
MESSAGE_LINES = 12
LINE_LIMIT = 200

PASS, FAIL, SKIP = "pass", "fail", "skip"
_RANK = {PASS: 0, SKIP: 1, FAIL: 2}  # phases of one test: a skip or a failure outranks a pass
_CELL_RANK = {SKIP: 0, PASS: 1, FAIL: 2}  # tests of one cell: a failure, else a pass, outranks a skip
ANY = "any"  # the "method" of a test that starts no multiprocessing process


@dataclass
class TestResult:
    name: str
    spec: list[str]
    start_method: str | None
    status: str = PASS
    message: str = ""
    output: str = ""
    when: str = ""


def python_build() -> dict[str, str]:
    """Python version and build: GIL or free-threaded."""
    free = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    gil_on = getattr(sys, "_is_gil_enabled", lambda: True)()
    build = "free-threaded" if free else "gil"
    if free:
        build += " (GIL enabled at run time)" if gil_on else " (GIL off)"
    return {
        "implementation": platform.python_implementation(),
        "version": platform.python_version(),
        "build": build,
    }


def cut(text: str, limit: int = OUTPUT_LIMIT) -> str:
    """Keep the head and tail of long text, saying how much was left out."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n... [{len(text) - limit} characters cut] ...\n{text[-half:]}"


def _message(report: Any) -> str:
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return crash.message
    return str(report.longrepr or "").strip()


def _plain(message: str, ids: list[str]) -> str:
    """A failure message without the prefixes the plugin and pytest add (``[FORK-1] Failed: FORK-1: ``)."""
    text = message.strip()
    for prefix in (f"[{', '.join(ids)}] ", "Failed: ", *(f"{i}: " for i in ids), "kata: "):
        text = text.removeprefix(prefix)
    return text


@dataclass
class Conformance:
    solutions: str
    methods: tuple[str, ...]
    tests: dict[str, TestResult] = field(default_factory=dict)

    def add(self, report: Any) -> None:
        props = dict(report.user_properties)
        ids = props.get("spec", "").split()
        if not ids:
            known = self.tests.get(report.nodeid)
            if known is None:
                return  # a test with no spec item (tooling self-tests)
            ids = known.spec
        result = self.tests.setdefault(
            report.nodeid, TestResult(report.nodeid, ids, props.get("start_method") or None)
        )
        if report.failed:
            status = FAIL
        elif report.skipped:
            status = SKIP
        else:
            return  # a passing phase changes nothing: a result starts as a pass
        if _RANK[status] > _RANK[result.status]:
            result.status, result.when = status, report.when
            result.message = cut(_message(report))
        if status == FAIL:
            output = "".join(text for _, text in getattr(report, "sections", []) if text)
            result.output = cut((result.output + output).strip())

    # ---------------------------------------------------------------- verdicts

    def cells(self) -> dict[str, dict[str, str]]:
        """Per spec ID, per start method (or ``any``): fail if a test failed, else pass if one did."""
        table: dict[str, dict[str, str]] = {}
        for result in self.tests.values():
            for spec_id in result.spec:
                row = table.setdefault(spec_id, {})
                col = result.start_method or ANY
                old = row.get(col)
                if old is None or _CELL_RANK[result.status] > _CELL_RANK[old]:
                    row[col] = result.status
        return table

    @staticmethod
    def overall(row: dict[str, str]) -> str:
        statuses = set(row.values())
        if FAIL in statuses:
            return FAIL
        return PASS if PASS in statuses else SKIP

    def ordered_ids(self) -> list[str]:
        cells = self.cells()
        order = list(specs.items())
        return [i for i in order if i in cells] + sorted(i for i in cells if i not in order)

    def totals(self) -> dict[str, dict[str, int]]:
        cells = self.cells()
        spec_totals = {PASS: 0, FAIL: 0, SKIP: 0}
        for spec_id in cells:
            spec_totals[self.overall(cells[spec_id])] += 1
        test_totals = {PASS: 0, FAIL: 0, SKIP: 0}
        for result in self.tests.values():
            test_totals[result.status] += 1
        return {"specs": spec_totals, "tests": test_totals}

    # --------------------------------------------------------------- rendering

    def render(self, brief: bool = False) -> list[str]:
        lines = [
            "",
            f"kata conformance — solutions: {self.solutions} · start methods: "
            f"{', '.join(self.methods)} · Python {python_build()['version']} "
            f"({python_build()['build']}) on {sys.platform}",
        ]
        lines += self._topic_rows() if brief else self._id_rows()
        totals = self.totals()
        s, t = totals["specs"], totals["tests"]
        lines.append(
            f"spec items: {s[PASS]} pass, {s[FAIL]} fail, {s[SKIP]} skip"
            f" · tests: {t[PASS]} passed, {t[FAIL]} failed, {t[SKIP]} skipped"
        )
        if brief:
            lines += self._first_failure()
        return lines

    def _id_rows(self) -> list[str]:
        cells, known = self.cells(), specs.items()
        cols = list(self.methods)
        width = max([len(i) for i in cells] + [7])
        head = f"{'spec ID':<{width}}  {'result':<6}  " + "  ".join(f"{m:<10}" for m in cols)
        rows = [head + "  behaviour", "-" * min(100, len(head) + 40)]
        for spec_id in self.ordered_ids():
            row = cells[spec_id]
            verdict = self.overall(row).upper() if self.overall(row) == FAIL else self.overall(row)
            per = [row.get(m) or ("—" if ANY in row else "") for m in cols]
            per = [p.upper() if p == FAIL else p for p in per]
            title = known[spec_id].title if spec_id in known else ""
            rows.append(
                f"{spec_id:<{width}}  {verdict:<6}  " + "  ".join(f"{p:<10}" for p in per) + f"  {title[:60]}"
            )
        return rows

    def _topic_rows(self) -> list[str]:
        cells = self.cells()
        rows = [f"{'topic':<14} {'pass':>4} {'fail':>4} {'skip':>4}  failing"]
        for topic in specs.topics():
            ids = [i for i in topic.ids if i in cells]
            if not ids:
                continue
            verdicts = {i: self.overall(cells[i]) for i in ids}
            failing = [i for i in ids if verdicts[i] == FAIL]
            shown = " ".join(failing[:8]) + (f" (+{len(failing) - 8})" if len(failing) > 8 else "")
            rows.append(
                f"{topic.name:<14} {sum(v == PASS for v in verdicts.values()):>4}"
                f" {len(failing):>4} {sum(v == SKIP for v in verdicts.values()):>4}  {shown}"
            )
        return rows

    def _first_failure(self) -> list[str]:
        known = specs.items()
        failed = [r for r in self.tests.values() if r.status == FAIL]
        if not failed:
            return []
        order = {i: n for n, i in enumerate(known)}
        first = min(failed, key=lambda r: (min(order.get(i, 10**6) for i in r.spec), r.name))
        spec_id = min(first.spec, key=lambda i: order.get(i, 10**6))
        item = known.get(spec_id)
        message = _plain(first.message, first.spec).splitlines() or ["(no message)"]
        if len(message) > MESSAGE_LINES:
            message = [*message[:MESSAGE_LINES], f"... ({len(message) - MESSAGE_LINES} more lines)"]
        lines = ["", f"first failure: {spec_id}   ({first.name})"]
        if item:
            lines.append(f"  expected: {item.title}")
        shown = [ln[:LINE_LIMIT] + (" ..." if len(ln) > LINE_LIMIT else "") for ln in message]
        lines.append(f"  happened: {shown[0]}")
        lines += [f"            {ln}" for ln in shown[1:]]
        if item and item.hint_line:
            lines.append(f"  hint: {item.hint_line}   (more: kata hint {spec_id})")
        return lines

    def to_json(self) -> dict[str, Any]:
        cells, known = self.cells(), specs.items()
        return {
            "schema": "kata-conformance/1",
            "solutions": self.solutions,
            "python": python_build(),
            "platform": {
                "system": platform.system(),
                "machine": platform.machine(),
                "sys_platform": sys.platform,
            },
            "start_methods": list(self.methods),
            "specs": {
                i: {
                    "status": self.overall(cells[i]),
                    "topic": known[i].topic if i in known else None,
                    "title": known[i].title if i in known else None,
                    "methods": dict(sorted(cells[i].items())),
                }
                for i in self.ordered_ids()
            },
            "tests": [
                {k: v for k, v in asdict(r).items() if k != "when"}
                for r in sorted(self.tests.values(), key=lambda r: r.name)
            ],
            "totals": self.totals(),
        }

    def write_json(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(self.to_json(), fh, indent=2, ensure_ascii=False)
            fh.write("\n")
