"""The kata's stand-in for ``nslookup``: answers from a local table, never the network.

The note runs ``nslookup``, which needs a DNS server and the network, and whose
answers change. This program takes the same input and prints the same shape of
output, from the fixed table below, so the subprocess topic
(spec/04-subprocess.md) can run a real program deterministically::

    python -m solutions.lookup www.python.org        # one look-up, like `nslookup NAME`
    printf 'set q=mx\\npython.org\\nexit\\n' | python -m solutions.lookup   # interactive

Exit code 0, or 1 when a one-shot look-up finds nothing (``NXDOMAIN``), as
``nslookup`` does. Not part of the learner's work: everything here is private
and ``kata init`` copies it whole. It imports nothing but ``sys``, so it also
runs as a script by path.
"""

from __future__ import annotations

import sys

_SERVER = "127.0.0.1"

#: (record type, name) -> the answer lines, in nslookup's shape.
_TABLE: dict[tuple[str, str], list[str]] = {
    ("a", "www.python.org"): [
        "www.python.org\tcanonical name = python.map.fastly.net.",
        "Name:\tpython.map.fastly.net",
        "Address: 199.27.79.223",
    ],
    ("a", "python.org"): ["Name:\tpython.org", "Address: 151.101.192.223"],
    ("a", "mail.python.org"): ["Name:\tmail.python.org", "Address: 82.94.164.166"],
    ("mx", "python.org"): ["python.org\tmail exchanger = 50 mail.python.org."],
}

#: Extra lines after an MX answer (nslookup's "Authoritative answers can be found from:").
_AUTHORITY: dict[str, list[str]] = {
    "python.org": [
        "mail.python.org\tinternet address = 82.94.164.166",
        "mail.python.org\thas AAAA address 2001:888:2000:d::a6",
    ],
}


def _answer(name: str, kind: str) -> tuple[list[str], bool]:
    """The lines printed for one look-up, and whether the name was found."""
    name = name.strip()
    key = name.rstrip(".").lower()
    lines = [f"Server:\t\t{_SERVER}", f"Address:\t{_SERVER}#53", ""]
    found = _TABLE.get((kind, key))
    if found is None:
        return [*lines, f"** server can't find {name}: NXDOMAIN", ""], False
    lines += ["Non-authoritative answer:", *found, ""]
    if kind == "mx" and key in _AUTHORITY:
        lines += ["Authoritative answers can be found from:", *_AUTHORITY[key], ""]
    return lines, True


def _interactive(stdin: object) -> int:
    """Read commands like nslookup's prompt: ``set q=TYPE`` / ``set type=TYPE``, a name, ``exit``."""
    kind = "a"
    for raw in stdin:  # type: ignore[attr-defined]
        line = raw.strip()
        if not line:
            continue
        if line == "exit":
            break
        if line.startswith("set "):
            key, _, value = line[4:].partition("=")
            if key.strip() in ("q", "query", "type", "querytype"):
                kind = value.strip().lower()
            continue
        print("\n".join(_answer(line, kind)[0]), flush=True)
    return 0


def _main(argv: list[str]) -> int:
    names = [a for a in argv if not a.startswith("-")]
    if not names:
        return _interactive(sys.stdin)
    lines, found = _answer(names[0], "a")
    print("\n".join(lines), flush=True)
    return 0 if found else 1


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
