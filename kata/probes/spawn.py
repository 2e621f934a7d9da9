"""Targets for the spawn topic's tests (spec/06-spawn.md), importable by spawn children."""

from __future__ import annotations

from typing import Any


def take(*args: Any) -> None:
    """A target that accepts anything and does nothing: what matters is whether it starts."""
