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


def train(home, presets, seeds=None, *, engine: str = "fused", on_event=None, stop=None, jobs: int = 1,
          again: bool = False):
    """Plan ``presets`` over ``seeds`` and train the tasks as ``fnn-tui run`` does; return
    how each run ended (``fnn_tui.runs.record.RecordedRun``), in order."""
    from fnn_tui.core.trainer import RunOptions
    from fnn_tui.runs.execute import train_tasks
    from fnn_tui.runs.plan import plan
    from fnn_tui.store.runs import Store

    with Store(home) as store:
        planned = plan(store, list(presets), RunOptions(engine=engine, device="cpu"), seeds, again=again)
    return train_tasks(home, planned.tasks, jobs, on_event or (lambda *_: None), stop).results


def resume(home, run_ids, *, on_event=None, stop=None, jobs: int = 1):
    """Plan the resumption of stopped runs and train it; return how each ended."""
    from fnn_tui.runs.execute import train_tasks
    from fnn_tui.runs.plan import plan_resume
    from fnn_tui.store.runs import Store

    with Store(home) as store:
        planned = plan_resume(store, list(run_ids))
    return train_tasks(home, planned.tasks, jobs, on_event or (lambda *_: None), stop).results


def launch_presets(home, presets, options, seeds=None, jobs: int = 1):
    """Plan ``presets`` as the app does and start the background worker on the tasks."""
    from fnn_tui.runs.background import launch
    from fnn_tui.runs.plan import plan
    from fnn_tui.store.runs import Store

    with Store(home) as store:
        planned = plan(store, list(presets), options, seeds)
    return launch(home, planned.tasks, jobs)


def without_provenance(text: str) -> str:
    """A saved table without its provenance: Markdown's front matter or CSV's first ``#`` line."""
    if text.startswith("---\n"):
        return text.split("\n---\n", 1)[1].lstrip("\n")
    if text.startswith("# "):
        return text.split("\n", 1)[1]
    return text


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
