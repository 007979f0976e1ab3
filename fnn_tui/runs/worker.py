"""The background training process (``fnn-tui worker``): trains queued runs in order.

SIGTERM, SIGINT and SIGHUP stop it as "interrupted" (resumable) and it exits with
128 + the signal; SIGUSR1 (``fnn-tui stop``) stops it as "cancelled". Either way the
rest of its queue is cancelled. Its output, one line per event, goes to the log file it
was started with.
"""

from __future__ import annotations

import os
import signal
from datetime import datetime
from pathlib import Path

from fnn_tui.core.events import EndEvent, EpochFinished, Event, RunStarted, end_status
from fnn_tui.core.status import RunStatus
from fnn_tui.core.stopping import StopRequest, install_signal_stop
from fnn_tui.core.trainer import RunOptions
from fnn_tui.runs.record import end_message, record_run, resume_run, stored_preset
from fnn_tui.store.runs import Store

LINE_LIMIT = 300  # an error's text can be long (a tensor in an exception): the log keeps one short line


def _log(message: str) -> None:
    # one line per event, even for an error whose message has several lines (a torch error),
    # and a short one: such a message can hold a whole tensor
    line = " / ".join(part.strip() for part in message.splitlines() if part.strip())
    if len(line) > LINE_LIMIT:
        line = line[: LINE_LIMIT - 1] + "…"
    print(f"{datetime.now():%Y-%m-%d %H:%M:%S} {line}", flush=True)


def log_event(run_id: int, event: Event) -> None:
    """One line per event worth a line."""
    if isinstance(event, RunStarted):
        _log(f"run {run_id}: {event.preset} started on {event.device} ({event.engine}), "
             f"epochs {event.start_epoch + 1}..{event.epochs}"
             + (f", from step {event.start_step + 1}" if event.start_step else ""))
    elif isinstance(event, EpochFinished):
        m = event.metrics
        _log(f"run {run_id}: epoch {m.epoch} train loss {m.train_loss:.6g} test loss {m.test_loss:.6g}")
    elif isinstance(event, EndEvent):
        message = end_message(event)
        _log(f"run {run_id}: {end_status(event).label}" + (f": {message}" if message else ""))


def _group_from(home: Path, items: list[str]) -> list[int]:
    """The queued runs at the head of ``items`` that are seeds of one preset's settings on the
    fused engine on the CPU: they train together, up to the group width."""
    from fnn_tui.core.group import default_lanes

    with Store(home) as store:
        head = []
        for item in items:
            if item.startswith("r") or len(head) == default_lanes():
                break
            record = store.get_run(int(item))
            if record is None or record.status != RunStatus.QUEUED or record.engine != "fused" or record.device != "cpu":
                break
            if head and (record.preset, record.study) != (head[0].preset, head[0].study):
                break
            if any(r.seed == record.seed for r in head):
                break
            head.append(record)
    return [r.id for r in head]


def main(home: Path, items: list[str]) -> int:
    """Train ``items`` (run ids; ``rN`` resumes run N) in order; return the exit code."""
    stop = StopRequest()
    install_signal_stop(stop)
    if hasattr(signal, "SIGUSR1"):
        signal.signal(signal.SIGUSR1, lambda signum, frame: stop.set(RunStatus.CANCELLED))
    code = 0
    grouped: set[int] = set()
    for index, item in enumerate(items):
        resume = item.startswith("r")
        run_id = int(item.lstrip("r"))
        if stop.is_set():
            with Store(home) as store:
                rest = [int(i.lstrip("r")) for i in items[index:]]
                store.cancel_queued(rest, f"the queue was stopped ({stop.status.label})")
            break
        if run_id in grouped:
            continue  # trained with the group it belongs to
        group = _group_from(home, items[index:]) if not resume else []
        if len(group) > 1:
            from fnn_tui.runs.group import train_queued_group

            grouped.update(group)
            try:
                results = train_queued_group(home, group, log_event, stop)
            except Exception as exc:  # the runs stay as they are (failed or queued): go on
                _log(f"runs {', '.join(map(str, group))}: could not run: {exc.__class__.__name__}: {exc}")
                code = 1
                continue
            if any(end_status(r.end).bad for r in results):
                code = 1
            continue
        try:
            if resume:
                result = resume_run(home, run_id, log_event, stop, queued=True)
            else:
                with Store(home) as store:
                    record = store.get_run(run_id)
                if record is None or record.status != RunStatus.QUEUED:
                    _log(f"run {run_id}: not queued any more, skipped")
                    continue
                preset = stored_preset(record)
                options = RunOptions(record.device, record.engine)
                result = record_run(home, preset, options, log_event, stop, run_id=run_id)
        except Exception as exc:  # one bad run must not take the rest of the queue with it
            _log(f"run {run_id}: could not run: {exc.__class__.__name__}: {exc}")
            with Store(home) as store:
                record = store.get_run(run_id)
                # only a run this process holds: another process may have resumed it meanwhile
                if record is not None and record.status.active and record.pid == os.getpid():
                    store.end_run(run_id, RunStatus.FAILED, message=str(exc))
            code = 1
            continue
        if end_status(result.end).bad:
            code = 1
    if stop.status == RunStatus.INTERRUPTED and stop.signum is not None:
        _log(f"stopped by signal {stop.signum}")
        return 128 + stop.signum
    return code
