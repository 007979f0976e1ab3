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


def screen_lines(svg: str) -> list[str]:
    """The text of a screenshot, one string per terminal row, from Textual's SVG export."""
    import html
    import re

    cells = re.findall(r'<text class="[^"]*" x="([\d.]+)" y="[\d.]+" textLength="([\d.]+)" '
                       r'clip-path="url\(#[\w-]*line-(\d+)\)">([^<]*)</text>', svg)
    width = min(float(length) / len(html.unescape(text)) for _, length, _, text in cells if text)
    rows: dict[int, dict[int, str]] = {}
    for x, _, line, text in cells:
        rows.setdefault(int(line), {})[round(float(x) / width)] = html.unescape(text).replace("\xa0", " ").rstrip("\n")
    lines = []
    for line in range(max(rows) + 1):
        text = ""
        for col, part in sorted(rows.get(line, {}).items()):
            text = text.ljust(col) + part
        lines.append(text)
    return lines
