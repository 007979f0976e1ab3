"""Run controls: device, engine, seed and epochs overrides, the seeds to train, and a line that
warns when the device or engine chosen trains with the slow PyTorch engine. Each device in
the list says which engine a study gets there (:func:`device_label`)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, Label, Select

from fnn_tui.core.devices import available_devices
from fnn_tui.core.engines import ENGINE_NAMES
from fnn_tui.core.trainer import RunOptions


def device_label(device: str) -> str:
    """A device as the selector lists it: its name and the engine a study (several seeds) gets
    there (``core/group.py: planned_runs``; one seed on a GPU trains on the PyTorch engine)."""
    if device.startswith("cuda"):
        return f"{device} · GPU group for seeds"
    return {"cpu": "cpu · fused kernels", "mps": "mps · PyTorch engine"}.get(device, device)


class RunControls(Vertical):
    """Device and engine selectors, two override fields and the seeds field; disabled while a
    run is active."""

    def __init__(self, device: str = "auto", engine: str = "auto", **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.devices = ["auto", *available_devices()]
        self.initial_device = device if device in self.devices else "auto"
        self.initial_engine = engine if engine in ENGINE_NAMES else "auto"

    def compose(self) -> ComposeResult:
        with Horizontal(classes="row"):
            yield Label("device", classes="key")
            yield Select([(device_label(d), d) for d in self.devices], value=self.initial_device, allow_blank=False,
                         compact=True, id="device")
        with Horizontal(classes="row"):
            yield Label("engine", classes="key")
            yield Select([(e, e) for e in ENGINE_NAMES], value=self.initial_engine, allow_blank=False,
                         compact=True, id="engine")
        with Horizontal(classes="row"):
            yield Label("seed", classes="key")
            yield Input(placeholder="preset's", type="integer", compact=True, id="seed")
        with Horizontal(classes="row"):
            yield Label("epochs", classes="key")
            yield Input(placeholder="preset's", type="integer", compact=True, id="epochs")
        with Horizontal(classes="row"):
            yield Label("seeds", classes="key")
            yield Input(placeholder="one (N, 1,5 or 0-9)", compact=True, id="seeds",
                        restrict=r"[0-9, \-]*", max_length=200)
        yield Label("", id="engine-note")

    def show_engine_note(self, text: str | None) -> None:
        """Say what the device and engine chosen cost (``None``: nothing to warn of; hidden)."""
        note = self.query_one("#engine-note", Label)
        note.update(text or "")
        note.display = bool(text)

    def options(self) -> RunOptions:
        """The chosen device and engine."""
        return RunOptions(device=str(self.query_one("#device", Select).value),
                          engine=str(self.query_one("#engine", Select).value))

    def overrides(self) -> dict[str, int | None]:
        """Seed and epochs overrides (``None``: the preset's own)."""
        out: dict[str, int | None] = {}
        for key in ("seed", "epochs"):
            text = self.query_one(f"#{key}", Input).value.strip()
            out[key] = int(text) if text.lstrip("-").isdigit() else None
        return out

    def seeds(self) -> str:
        """The seeds field as typed ("" for the preset's one seed)."""
        return self.query_one("#seeds", Input).value.strip()

    def set_enabled(self, enabled: bool) -> None:
        """Enable or disable every control."""
        for widget in self.query("Select, Input"):
            widget.disabled = not enabled
