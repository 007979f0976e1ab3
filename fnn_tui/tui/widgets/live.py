"""The live view: run and queue progress, loss sparklines (log scale) and the epoch log."""

from __future__ import annotations

import math

from rich.console import Group
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Label, ProgressBar, RichLog, Sparkline

from fnn_tui.core.events import EpochFinished, EpochMetrics, RunStarted, StepProgress
from fnn_tui.core.status import RunStatus

# Each number gets the most precise format that fits its column; a value no format fits
# (a negative loss, a 10^300 ratio) is printed whole and pushes the line out rather than
# being cut. Losses and lr can span 1e-13 to 1e+30 before a run diverges, ratios 1234.5.
LOSS_FORMATS = (".4g", ".3g", ".2g", ".1g", ".0e")
RATIO_FORMATS = (".3f", ".2f", ".1f", ".0f", ".2g", ".1g", ".0e")
LR_FORMATS = (".2g", ".1g", ".0e")
LOSS_WIDTH, RATIO_WIDTH, LR_WIDTH = 8, 6, 7  # "1.2e+300", "1234.5", "4.5e-13"
EPOCH_WIDTH = 4  # grows for runs of more than 9999 epochs


def log_header(epoch_width: int = EPOCH_WIDTH) -> str:
    """The epoch log's column titles; "train" and "test" are the losses, as in the sparklines."""
    return (f"{'ep':>{epoch_width}} {'train':>{LOSS_WIDTH}} {'ratio':>{RATIO_WIDTH}} "
            f"{'test':>{LOSS_WIDTH}} {'ratio':>{RATIO_WIDTH}} {'lr':>{LR_WIDTH}}")


LOG_HEADER = log_header()


def fit(value: float, width: int, formats: tuple[str, ...]) -> str:
    """``value`` right-aligned in ``width`` columns with the first of ``formats`` that fits."""
    text = ""
    for spec in formats:
        text = format(value, spec)
        if len(text) <= width:
            return text.rjust(width)
    return text


def epoch_line(m: EpochMetrics, epoch_width: int = EPOCH_WIDTH) -> str:
    """One epoch as the notes print it (train loss, train ratio, test loss, test ratio, lr),
    in 44 columns under :func:`log_header` so it fits the live view at 80x24."""
    return " ".join((
        f"{m.epoch:{epoch_width}d}",
        fit(m.train_loss, LOSS_WIDTH, LOSS_FORMATS),
        fit(m.train_ratio, RATIO_WIDTH, RATIO_FORMATS),
        fit(m.test_loss, LOSS_WIDTH, LOSS_FORMATS),
        fit(m.test_ratio, RATIO_WIDTH, RATIO_FORMATS),
        fit(m.lr, LR_WIDTH, LR_FORMATS),
    ))


class LossSpark(Horizontal):
    """A labelled sparkline of log10(loss) with the current and best values."""

    DEFAULT_CSS = """
    LossSpark {
        height: 1;
    }
    LossSpark Sparkline {
        width: 1fr;
        height: 1;
    }
    LossSpark .value {
        width: 22;
        padding-left: 1;
    }
    """

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
    """Everything about the run in progress, driven by the trainer's events."""

    name = "run"  # the run shown: its preset and seed
    steps = 0  # steps per epoch of the run shown
    epoch_width = EPOCH_WIDTH  # the epoch column, wide enough for the run's last epoch

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

    @property
    def status(self) -> Label:
        """The one-line status at the top."""
        return self.query_one("#run-status", Label)

    @property
    def run_bar(self) -> ProgressBar:
        """Progress of the run, in steps."""
        return self.query_one("#run-progress", ProgressBar)

    @property
    def log(self) -> RichLog:
        """The epoch log."""
        return self.query_one("#epoch-log", RichLog)

    def start(self, event: RunStarted) -> None:
        """A run begins; its stored epochs (resumed, reattached) follow as epoch events."""
        self.name = f"{event.preset} seed {event.seed}"  # a study trains one preset under several seeds
        self.steps = event.steps_per_epoch
        self.epoch_width = max(EPOCH_WIDTH, len(str(event.epochs)))
        self.query_one("#log-header", Label).update(log_header(self.epoch_width))
        self.status.update(Text.assemble(("running ", "bold"), f"{self.name} on {event.device} ({event.engine})"))
        self.run_bar.update(total=event.epochs * event.steps_per_epoch,
                            progress=event.start_epoch * event.steps_per_epoch + event.start_step)
        self.query_one("#train-spark", LossSpark).reset()
        self.query_one("#test-spark", LossSpark).reset()
        self.log.clear()
        self.note(Text(f"{self.name}: {event.epochs} epochs x {event.steps_per_epoch} steps, "
                       f"{event.device} ({event.engine})", style="bold"))

    def note(self, line: Text) -> None:
        """A line of prose in the log, wrapped to the panel's width: the log does not wrap
        (an epoch row is one row of a table), and one long line gave it a sideways scrollbar
        at 80x24 (a Text is never wrapped by an unwrapped log; the Group around it is)."""
        self.log.write(Group(line))

    def step(self, event: StepProgress) -> None:
        """Progress inside an epoch."""
        self.run_bar.update(progress=(event.epoch - 1) * event.steps_per_epoch + event.step)

    def epoch(self, event: EpochFinished) -> None:
        """An epoch finished."""
        m = event.metrics
        self.run_bar.update(progress=m.epoch * self.steps)
        self.query_one("#train-spark", LossSpark).add(m.train_loss)
        self.query_one("#test-spark", LossSpark).add(m.test_loss)
        self.log.write(epoch_line(m, self.epoch_width))
        # the run bar has the time left; this line must fit the panel's 46 columns at 80x24
        self.status.update(f"{self.name} epoch {m.epoch}/{event.epochs}  loss {m.train_loss:.4g}")

    def queue(self, ended: int, size: int) -> None:
        """How many runs of the queue have ended, of all (runs of a group or a pool end in any order)."""
        self.query_one("#queue-progress", ProgressBar).update(total=size, progress=ended)

    def stopping(self) -> None:
        """A stop was asked for and has not arrived yet."""
        self.status.update("stopping…")

    def end(self, name: str, status: RunStatus, message: str) -> None:
        """A run ended (``name``: ``exp08 seed 3``); diverged and failed runs are shown in red."""
        line = Text(f"{name} {status.label}: {message}", style=("bold " if status.bad else "") + status.style)
        self.note(line)
        self.status.update(line)
        if status == RunStatus.FINISHED:
            self.run_bar.update(progress=self.run_bar.total or 0)

    def done(self, outcome: str, what: str, worst: RunStatus) -> None:
        """A queue of several runs ended: the status line says what they came to (the last
        run's own end line stays in the log above), coloured by the worst of them."""
        line = Text(outcome, style=("bold " if worst.bad else "") + worst.style)
        self.status.update(line)
        self.note(Text.assemble(line, f" ({what})"))
