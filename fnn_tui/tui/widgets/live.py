"""The live view: run and queue progress, loss sparklines (log scale) and the epoch log."""

from __future__ import annotations

import math

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Label, ProgressBar, RichLog, Sparkline

from fnn_tui.core.events import EpochMetrics

LOG_HEADER = f"{'ep':>4} {'train loss':>10} {'ratio':>5} {'test loss':>9} {'ratio':>5} {'lr':>6}"


def epoch_line(m: EpochMetrics) -> str:
    """One epoch as the notes print it (train loss, train ratio, test loss, test ratio, lr),
    in 44 columns under :data:`LOG_HEADER` so it fits the live view at 80x24."""
    return (f"{m.epoch:4d} {m.train_loss:10.4g} {m.train_ratio:5.3f} {m.test_loss:9.4g} "
            f"{m.test_ratio:5.3f} {m.lr:6.0e}")


class LossSpark(Horizontal):
    """A labelled sparkline of log10(loss) with the current and best values."""

    def __init__(self, label: str, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.label = label
        self.values: list[float] = []

    def compose(self) -> ComposeResult:
        yield Label(self.label, classes="key")
        yield Sparkline([], summary_function=max)
        yield Label("", classes="value")

    def reset(self, values: list[float] | None = None) -> None:
        """Start again, optionally with stored values."""
        self.values = list(values or [])
        self._redraw()

    def add(self, value: float) -> None:
        """Append one epoch's loss."""
        self.values.append(value)
        self._redraw()

    def _redraw(self) -> None:
        spark = self.query_one(Sparkline)
        spark.data = [math.log10(max(v, 1e-12)) for v in self.values]
        value = self.query_one(".value", Label)
        if self.values:
            value.update(f"{self.values[-1]:.4g} best {min(self.values):.4g}")
        else:
            value.update("")


class LiveView(Vertical):
    """Everything about the run in progress."""

    preset = ""
    steps = 0  # steps per epoch of the run shown

    def compose(self) -> ComposeResult:
        yield Label("Idle: pick a preset and press r.", id="run-status")
        with Horizontal(classes="row"):
            yield Label("run", classes="key")
            yield ProgressBar(total=1, id="run-progress", show_eta=True)
        with Horizontal(classes="row"):
            yield Label("queue", classes="key")
            yield ProgressBar(total=1, id="queue-progress", show_eta=False)
        yield LossSpark("train", id="train-spark")
        yield LossSpark("test", id="test-spark")
        yield Label(LOG_HEADER, id="log-header")  # stays put while the log scrolls
        yield RichLog(id="epoch-log", wrap=False, min_width=40, max_lines=2000)

    def start(self, preset: str, engine: str, device: str, epochs: int, steps: int, start_epoch: int,
              queue_index: int, queue_size: int, history: list[EpochMetrics]) -> None:
        """A run begins (or resumes with ``history`` already stored)."""
        self.preset = preset
        self.steps = steps
        self.query_one("#run-status", Label).update(
            Text.assemble(("running ", "bold"), f"{preset} on {device} ({engine})"))
        bar = self.query_one("#run-progress", ProgressBar)
        bar.update(total=epochs * steps, progress=start_epoch * steps)
        self.query_one("#queue-progress", ProgressBar).update(total=queue_size, progress=queue_index)
        self.query_one("#train-spark", LossSpark).reset([m.train_loss for m in history])
        self.query_one("#test-spark", LossSpark).reset([m.test_loss for m in history])
        log = self.query_one("#epoch-log", RichLog)
        log.clear()
        log.write(Text(f"{preset}: {epochs} epochs x {steps} steps on {device} ({engine})", style="bold"))
        for m in history:
            log.write(epoch_line(m))

    def step(self, epoch: int, step: int, steps: int) -> None:
        """Progress inside an epoch."""
        self.query_one("#run-progress", ProgressBar).update(progress=(epoch - 1) * steps + step)

    def epoch(self, m: EpochMetrics, epochs: int) -> None:
        """An epoch finished."""
        self.query_one("#run-progress", ProgressBar).update(progress=m.epoch * self.steps)
        self.query_one("#train-spark", LossSpark).add(m.train_loss)
        self.query_one("#test-spark", LossSpark).add(m.test_loss)
        self.query_one("#epoch-log", RichLog).write(epoch_line(m))
        self.query_one("#run-status", Label).update(
            f"{self.preset} epoch {m.epoch}/{epochs}  loss {m.train_loss:.4g}  {m.seconds:.2f} s/ep")

    def end(self, preset: str, status: str, message: str, queue_index: int, queue_size: int) -> None:
        """A run ended; diverged and failed runs are shown in red."""
        style = {"finished": "green", "diverged": "bold red", "failed": "bold red"}.get(status, "yellow")
        line = Text(f"{preset} {status}: {message}", style=style)
        self.query_one("#epoch-log", RichLog).write(line)
        self.query_one("#run-status", Label).update(line)
        if status == "finished":
            bar = self.query_one("#run-progress", ProgressBar)
            bar.update(progress=bar.total or 0)
        self.query_one("#queue-progress", ProgressBar).update(total=queue_size, progress=queue_index + 1)
