"""The value checks a preset's SCHEMA is made of, each returning one problem line or ``None``.

They live apart from :mod:`fnn_tui.core.presets` so that the schema reads as a table: each
key names its check once, with its bounds, and the same check serves the TOML file and the
run-time overrides. Every message says what was expected and what was found, and never
quotes more than a short piece of the input: a preset file is untrusted and can be huge.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Callable
from typing import Any

from fnn_tui.core.expr import shorten

Check = Callable[[Any], "str | None"]

# Control characters are refused in every string: they would move the cursor, change
# colours or clear the screen when a name or note is printed in the terminal, and a
# refused string needs no escaping to round-trip through TOML. Tab and newline are
# refused too (one rule, no exceptions): names and notes are shown on one line.
_NAMED = {"\t": "tab", "\n": "newline", "\r": "carriage return", "\x1b": "escape", "\x00": "NUL", "\x7f": "DEL"}
_BIDI = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")  # reorder shown text


def type_name(value: Any) -> str:
    """How a TOML value is shown in a message: its type and a short form of it."""
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"integer {show_int(value)}"
    if isinstance(value, float):
        return f"float {value!r}"
    if isinstance(value, str):
        return f"string {shorten(repr(value))}"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "table"
    return type(value).__name__


def show_int(value: int) -> str:
    """An integer for a message; a huge one as its first digits and its length."""
    if abs(value) < 10**18:
        return str(value)
    try:
        digits = str(value)
    except ValueError:  # beyond Python's 4300-digit conversion limit
        return "(thousands of digits)"
    return f"{digits[:8]}... ({len(digits.lstrip('-'))} digits)"


def control_character(text: str) -> str | None:
    """The first character of ``text`` that is refused, described, or ``None``."""
    for position, char in enumerate(text):
        category = unicodedata.category(char)
        if category in ("Cc", "Cs", "Zl", "Zp") or char in _BIDI:
            name = _NAMED.get(char) or unicodedata.name(char, "control character")
            return f"U+{ord(char):04X} ({name.lower()}) at position {position}"
    return None


def integer(minimum: int, maximum: int | None = None) -> Check:
    """An integer in ``[minimum, maximum]``; the bounds are part of every message."""
    want = f"an integer >= {minimum}" if maximum is None else f"an integer from {minimum} to {maximum:_}"

    def check(v: Any) -> str | None:
        if isinstance(v, bool) or not isinstance(v, int):
            return f"expected {want}, found {type_name(v)}"
        if v < minimum or (maximum is not None and v > maximum):
            return f"expected {want}, found {show_int(v)}"
        return None

    return check


def number(low: float, high: float | None = None, *, low_open: bool, high_open: bool = True) -> Check:
    """A finite float (or integer) in an interval."""
    lo = f"> {low:g}" if low_open else f">= {low:g}"
    hi = "" if high is None else (f" and < {high:g}" if high_open else f" and <= {high:g}")
    want = f"a finite number {lo}{hi}"

    def check(v: Any) -> str | None:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return f"expected {want}, found {type_name(v)}"
        try:
            v = float(v)
        except OverflowError:
            return f"expected {want}, found an integer too large for a float"
        if not math.isfinite(v):
            return f"expected {want}, found {v}"
        if (v <= low) if low_open else (v < low):
            return f"expected {want}, found {v:g}"
        if high is not None and ((v >= high) if high_open else (v > high)):
            return f"expected {want}, found {v:g}"
        return None

    return check


def text(
    choices: tuple[str, ...] | None = None,
    *,
    aliases: tuple[str, ...] = (),
    nonempty: bool = False,
    max_length: int = 2000,
) -> Check:
    """A string: one of ``choices`` (or an old spelling in ``aliases``, accepted but not
    offered), or free text without control characters."""

    def check(v: Any) -> str | None:
        if not isinstance(v, str):
            want = "a string" if choices is None else "one of " + ", ".join(f'"{c}"' for c in choices)
            return f"expected {want}, found {type_name(v)}"
        if choices is not None:
            if v not in choices and v not in aliases:
                return f"expected one of {', '.join(repr(c) for c in choices)}, found {shorten(repr(v))}"
            return None
        bad = control_character(v)
        if bad:
            return f"expected text without control characters, found {bad} in {shorten(repr(v))}"
        if len(v) > max_length:
            return f"expected at most {max_length} characters, found {len(v)} ({shorten(repr(v))})"
        if nonempty and not v.strip():
            return "expected a non-empty string, found an empty one"
        return None

    return check


def domain(limit: float) -> Check:
    """``[low, high]``: two finite numbers, ``low < high``, both within ``±limit``."""

    def check(v: Any) -> str | None:
        if (
            not isinstance(v, list)
            or len(v) != 2
            or any(isinstance(e, bool) or not isinstance(e, (int, float)) for e in v)
        ):
            return f"expected an array of two numbers [low, high], found {type_name(v)}"
        try:
            low, high = float(v[0]), float(v[1])
        except OverflowError:
            return f"expected two numbers within +-{limit:g}, found an integer too large for a float"
        if not (math.isfinite(low) and math.isfinite(high)):
            return f"expected two finite numbers, found [{low:g}, {high:g}]"
        if max(abs(low), abs(high)) > limit:
            return f"expected two numbers within +-{limit:g}, found [{low:g}, {high:g}]"
        if not low < high:
            return f"expected low < high, found [{low:g}, {high:g}]"
        return None

    return check


def widths(max_width: int, max_layers: int) -> Check:
    """The hidden layers: 1 to ``max_layers`` widths, each from 1 to ``max_width``."""
    want = f"a non-empty array of at most {max_layers} integers from 1 to {max_width}"

    def check(v: Any) -> str | None:
        if not isinstance(v, list):
            return f"expected {want}, found {type_name(v)}"
        if not v:
            return f"expected {want}, found an empty array"
        if len(v) > max_layers:
            return f"expected {want}, found {len(v)} layers"
        for item in v:
            if isinstance(item, bool) or not isinstance(item, int):
                return f"expected {want}, found {type_name(item)} in the array"
            if not 1 <= item <= max_width:
                return f"expected {want}, found {show_int(item)}"
        return None

    return check
