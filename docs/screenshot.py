"""Regenerate docs/screenshot.svg: the app at 80x24 while exp07 trains (about 15 s).

Run: ``python docs/screenshot.py``. Uses a temporary store.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from fnn_tui.core.events import EpochFinished
from fnn_tui.tui.app import FnnApp
from fnn_tui.tui.messages import RunEvent


async def main() -> None:
    """Start exp07 with the PyTorch engine and save a screenshot after 12 epochs."""
    with tempfile.TemporaryDirectory() as home:
        app = FnnApp(home=Path(home), preset="exp07", engine="torch")
        seen = asyncio.Event()

        def hook(message: object) -> None:
            if (isinstance(message, RunEvent) and isinstance(message.event, EpochFinished)
                    and message.event.metrics.epoch >= 12):
                seen.set()

        async with app.run_test(size=(80, 24), message_hook=hook) as pilot:
            await pilot.press("r")
            await asyncio.wait_for(seen.wait(), timeout=120)
            await pilot.pause(0.3)
            app.save_screenshot("screenshot.svg", path=str(Path(__file__).parent))
            await pilot.press("s")
            await app.workers.wait_for_complete()


if __name__ == "__main__":
    asyncio.run(main())
