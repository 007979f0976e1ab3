"""Helpers shared by several test files."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float = 90.0, every: float = 0.02) -> T:
    """Poll ``predicate`` until it returns something true, and return that; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("timed out waiting")


def without_provenance(text: str) -> str:
    """A saved table without its provenance: Markdown's front matter or CSV's first ``#`` line."""
    if text.startswith("---\n"):
        return text.split("\n---\n", 1)[1].lstrip("\n")
    if text.startswith("# "):
        return text.split("\n", 1)[1]
    return text
