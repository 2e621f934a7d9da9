"""Targets for the spawn topic's tests (spec/06-spawn.md), importable by spawn children."""

from __future__ import annotations

from typing import Any


def take(*args: Any) -> None:
    """A target that accepts anything and does nothing: what matters is whether it starts."""


def put_type(q: Any, *args: Any) -> None:
    """A target that puts the type names of the rest of its arguments on ``q``: what reached the child."""
    q.put([type(a).__name__ for a in args])
