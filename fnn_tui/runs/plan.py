"""The planner: what a request comes to, decided once for every front end.

A request (``fnn-tui run``, ``run --seeds``, the app's Run and Run all, a resumption, the
background worker's queue) names presets and seeds. :func:`plan` turns it into
:class:`Task` objects, the one unit of work of fnn-tui: the stored runs that train together
in one kernel call (several lanes), or one run alone. Where a task trains (here, over the
process pool, in the background worker) is :mod:`fnn_tui.runs.execute`'s business; how it
trains is :func:`fnn_tui.runs.task.train_task`.

**What is done.** One rule, for every front end: a seed of a study (the same settings but
the seed: ``Preset.study_digest``) is done once one of its runs finished or diverged, on any
engine, and is not excluded (``fnn-tui runs exclude``: left out of the study, so to do). Finished is the result; diverged is a result too (a real outcome of the recipe that
the report counts), and training it again gives the same numbers. The engine is not part of
"the same settings" because the report puts every engine's runs of a study in one row. A
seed queued or training in another process is left to it; a stopped one (interrupted,
crashed, cancelled or failed) with a usable checkpoint is resumed; the rest are new runs.
``again`` trains done seeds once more (the user asked for a repeat: stored with
``repeat_of``, and the report counts the newest result of a seed once).

**Claims.** Planning claims every run it plans, in the store, before any training: a new
run is created ``queued`` only if no run of its study and seed is queued, training or done
(checked in the same transaction), and a stopped run is taken ``queued`` by one conditional
update. Two commands started together on one store therefore never train a seed twice;
the second one says the seed is training now.

**Which engine.** New runs get theirs together (``core/group.py: planned_runs``): several
new runs of one lane key on ``--device cuda`` (or ``cuda:N``; ``auto`` when the GPU pays for
the group's real size) go to the GPU group engine, ``fused-cuda``, in groups of up to
``GPU_MAX_LANES``; everything else gets the single-run rule (one new run on cuda: the torch
engine, as before). A stopped run keeps the engine it has.

**What trains together.** The engines answer (``core/group.py: group_capacity`` and
``lane_key``): runs on the same engine and device with equal lane keys (the settings the
kernel cannot vary per lane: the data, the network, epochs, batch size, loss; lr, its
decay, momentum, L2 and clip may differ, so seeds of several presets or variants share a
kernel), at the same position (new ones, or stopped ones at the same epoch and step), share
a task of up to ``group_capacity`` lanes; a group of one new run trains alone. A stopped run
goes on the way it trained (a lane of the kernel, or alone), so its numbers are those of an
uninterrupted run.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from fnn_tui.core.engines import CUDA_GROUP_ENGINE
from fnn_tui.core.group import GPU_MAX_LANES, group_capacity, group_sizes, lane_key, planned_runs
from fnn_tui.core.presets import MAX_SEED, Preset
from fnn_tui.core.state import TrainState
from fnn_tui.core.status import RESUMABLE, RunStatus
from fnn_tui.core.trainer import ResolvedRun, RunOptions
from fnn_tui.runs.liveness import reap
from fnn_tui.runs.record import ResumeError, claim, prepare_resume, single_engine_on
from fnn_tui.store.runs import RunRecord, Store

MAX_SEEDS = GPU_MAX_LANES  # one request: one GPU group's lanes (16 384); the reproduction study uses 10

_RANGE = re.compile(r"^(\d+)\s*-\s*(\d+)$")


class SeedsError(ValueError):
    """A seeds text that cannot be read; the message is one line saying what is accepted."""


def parse_seeds(text: str) -> list[int]:
    """Read ``N`` (seeds 0..N-1), a list ``3,7,11``, a range ``0-9``, or a mix of lists and
    ranges (``0-4,10``); the seeds come back sorted, each once."""
    text = text.strip()
    accepted = "give N (seeds 0..N-1), a list such as 3,7,11 or a range such as 0-9"
    if not text:
        raise SeedsError(f"no seeds given: {accepted}")
    if text.isdigit() and "," not in text:
        count = int(text)
        if not 1 <= count <= MAX_SEEDS:
            raise SeedsError(f"--seeds {text}: the number of seeds must be from 1 to {MAX_SEEDS}")
        return list(range(count))
    seeds: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        match = _RANGE.match(part)
        if match:
            low, high = int(match[1]), int(match[2])
            if low > high:
                raise SeedsError(f"--seeds {text}: the range {part} runs backwards; write {high}-{low}")
            if high - low + 1 > MAX_SEEDS:
                raise SeedsError(f"--seeds {text}: at most {MAX_SEEDS} seeds at once")
            seeds.update(range(low, high + 1))
        elif part.isdigit():
            seeds.add(int(part))
        else:
            raise SeedsError(f"--seeds {text}: cannot read {part!r}; {accepted}")
        if len(seeds) > MAX_SEEDS:
            raise SeedsError(f"--seeds {text}: at most {MAX_SEEDS} seeds at once")
    too_big = [s for s in seeds if s > MAX_SEED]
    if too_big:
        raise SeedsError(f"--seeds {text}: seed {too_big[0]} is above the largest seed, {MAX_SEED}")
    return sorted(seeds)


@dataclass(frozen=True)
class Task:
    """One unit of work: stored runs, claimed ``queued`` by the planning process, that train
    together in one kernel call (one run: it trains alone).

    Everything else (settings, engine, device, where each run resumes from) is in the store,
    so a task crosses a process boundary as its ids: the pool and the background worker get
    exactly what the planner decided.
    """

    run_ids: tuple[int, ...]
    label: str  # for messages: "exp08 (seeds 0-9)", "run 12"
    cost: float = 0.0  # a rough measure of its training time (the pool starts long tasks first)
    lanes_kernel: bool = False  # train as lanes of the multi-seed kernel (even a task of one run)
    engine: str = ""  # its runs' engine and device, as stored (for messages; "" where not known)
    device: str = ""

    @property
    def lanes(self) -> int:
        return len(self.run_ids)

    def arg(self) -> str:
        """The task on the background worker's command line: its ids joined by commas, with
        a leading ``g`` when it trains on the multi-seed kernel (``g12,13,14``, ``15``)."""
        return ("g" if self.lanes_kernel else "") + ",".join(map(str, self.run_ids))


@dataclass
class Plan:
    """What a request comes to: the tasks to train, and what was left out and why."""

    tasks: list[Task] = field(default_factory=list)
    done: list[int] = field(default_factory=list)  # run ids of seeds already finished or diverged
    active: list[int] = field(default_factory=list)  # run ids of seeds queued or training elsewhere
    resumed: list[int] = field(default_factory=list)  # run ids among the tasks' that continue
    repeats: list[int] = field(default_factory=list)  # new runs of seeds already done (``again``)
    todo: list[tuple[Preset, int]] = field(default_factory=list)  # each run to train and its epochs left

    @property
    def run_ids(self) -> list[int]:
        """Every run the tasks train, in order."""
        return [rid for task in self.tasks for rid in task.run_ids]

    def summary(self) -> str:
        """One line: what is skipped, and why (empty when nothing is)."""
        parts = []
        if self.done and not self.repeats:
            n = len(self.done)
            parts.append(f"{n} {'seed' if n == 1 else 'seeds'} done with these settings "
                         f"(run {_ids(self.done)}; --again, or R in the app, trains {'it' if n == 1 else 'them'} once more)")
        if self.repeats:
            parts.append(f"training {len(self.repeats)} done {'seed' if len(self.repeats) == 1 else 'seeds'} again")
        if self.active:
            parts.append(f"{len(self.active)} training now in another process (run {_ids(self.active)})")
        if self.resumed:
            parts.append(f"resuming {len(self.resumed)} stopped (run {_ids(self.resumed)})")
        return "; ".join(parts)


def _ids(ids: list[int], most: int = 6) -> str:
    shown = ", ".join(map(str, ids[:most]))
    return shown + (f" and {len(ids) - most} more" if len(ids) > most else "")


@dataclass
class _Lane:
    record: RunRecord  # as claimed (queued)
    preset: Preset
    state: TrainState | None  # where it resumes from (None: from the start)
    previous: RunStatus | None = None  # a stopped run's status before the claim (None: a new run)
    message: str | None = None


@dataclass
class _New:
    run: Preset  # a new run to create: its engine waits for the request's other new runs
    final: RunRecord | None  # the seed's done run it repeats (``again``), if any


def plan(
    store: Store,
    presets: list[Preset],
    options: RunOptions,
    seeds: list[int] | None = None,
    *,
    again: bool = False,
    dry: bool = False,
) -> Plan:
    """Plan ``presets`` (with their overrides applied) over ``seeds`` (``None``: each preset's
    own seed): every seed not done is claimed and put into a task. Bad input (device, engine)
    raises before anything is claimed; should anything fail while claiming, what was claimed
    is given back. ``dry``: decide only (``Plan.todo``; a dry run), claim nothing, no tasks."""
    result = Plan()
    lanes: list[_Lane] = []
    wanted: dict[str, Preset] = {}
    for preset in presets:
        for seed in ([preset.data.seed] if seeds is None else seeds):
            run = preset.with_overrides(seed=seed)
            wanted.setdefault(run.digest(), run)  # the same run asked twice is one run
    planned_runs(list(wanted.values()), options)  # bad device or engine: raises before anything is claimed
    reap(store, grace=0)  # a dead pid on this host is proof: a rerun right after a kill -9 goes on
    try:
        slots: list[_Lane | _New] = []
        for run in wanted.values():
            slot = _plan_one(store, run, options, again, result, dry)
            if isinstance(slot, _Lane):
                lanes.append(slot)
            if slot is not None:
                slots.append(slot)
        # the new runs' engine: decided for them all at once, as groups of their real size
        fresh = [slot for slot in slots if isinstance(slot, _New)]
        engines = dict(zip(map(id, fresh), planned_runs([f.run for f in fresh], options)))
        ordered: list[_Lane] = []
        for slot in slots:
            lane = _create(store, slot, engines[id(slot)], again, result) if isinstance(slot, _New) else slot
            if lane is not None:
                if isinstance(slot, _New):
                    lanes.append(lane)
                ordered.append(lane)
    except BaseException:
        _give_back(store, lanes)
        raise
    if not dry:
        result.tasks = _tasks(ordered)
    return result


def plan_resume(store: Store, run_ids: list[int], device: str | None = None) -> Plan:
    """Plan the resumption of stopped runs (the app's ``u``, ``fnn-tui resume``): each
    claimed ``queued``; runs of one study at the same position go on together, as the group
    they were. ``device``: continue there instead (:func:`engine_on`), recorded in the runs."""
    result = Plan()
    lanes: list[_Lane] = []
    try:
        for rid in run_ids:
            record, preset, state = prepare_resume(store, rid)
            moved = None if device is None else engine_on(record, preset, device)  # bad device: nothing claimed
            claim(store, record, RunStatus.QUEUED)
            if moved is not None and (moved.device, moved.engine) != (record.device, record.engine):
                store.move_run(rid, device=moved.device, engine=moved.engine)
            result.todo.append((preset, preset.training.epochs - (state.epoch if state is not None else 0)))
            lanes.append(_Lane(_reread(store, rid), preset, state, record.status, record.message))
            result.resumed.append(rid)
    except BaseException:
        _give_back(store, lanes)
        raise
    result.tasks = _tasks(lanes)
    return result


def engine_on(record: RunRecord, preset: Preset, device: str) -> ResolvedRun:
    """Where a stopped run goes on when its resumption names ``device``: a lane of a group
    (the GPU group engine's, or the CPU multi-seed kernel's) as a lane of that device's
    group engine, when it has one; else as a single run there (:func:`single_engine_on`).
    Raises ``DeviceError`` for a device this machine lacks."""
    from fnn_tui.core.engines import EngineError
    from fnn_tui.core.group import group_run
    from fnn_tui.core.trainer import resolve

    if record.grouped or record.engine == CUDA_GROUP_ENGINE:
        try:
            return group_run(preset, RunOptions(device, "auto"), 1)
        except EngineError:
            pass
    return resolve(preset, RunOptions(device, single_engine_on(record, preset, device)))


def _plan_one(store: Store, run: Preset, options: RunOptions, again: bool, result: Plan,
              dry: bool = False) -> _Lane | _New | None:
    """Decide one (settings, seed): done, active elsewhere, resumed (claimed, unless ``dry``)
    or new (a :class:`_New`, claimed by :func:`_create` once every new run's engine is
    known; ``None`` when ``dry``)."""
    study = run.study_digest()
    same = [r for r in store.list_runs(run.name) if r.study == study and r.seed == run.data.seed]  # newest first
    final = next((r for r in same if r.status.final and not r.excluded), None)  # excluded: left out of the study
    going = next((r for r in same if r.status.active), None)
    if going is not None:
        result.active.append(going.id)
        return None
    if final is not None and not again:
        result.done.append(final.id)
        return None
    if final is None:
        for record in (r for r in same if r.status in RESUMABLE):
            try:
                record, preset, state = prepare_resume(store, record.id)
                if not dry:
                    claim(store, record, RunStatus.QUEUED)
            except ResumeError:
                continue  # no usable checkpoint, or another process took it: a new run can go on
            result.resumed.append(record.id)
            result.todo.append((preset, preset.training.epochs - (state.epoch if state is not None else 0)))
            if dry:
                return None
            return _Lane(_reread(store, record.id), preset, state, record.status, record.message)
    if dry:
        if final is not None:
            result.done.append(final.id)
        result.todo.append((run, run.training.epochs))
        return None
    return _New(run, final)


def _create(store: Store, new: _New, resolved: ResolvedRun, again: bool, result: Plan) -> _Lane | None:
    """Claim a new run (created ``queued``) on ``resolved``'s engine and device, unless
    another process claimed its seed since we looked."""
    run, final = new.run, new.final
    study = run.study_digest()
    rid = store.create_run(run, engine=resolved.engine, device=resolved.device, status=RunStatus.QUEUED,
                           unless_taken=not again, repeat_of=final.id if final is not None else None)
    if rid is None:  # another process claimed this seed since we looked
        now = [r for r in store.list_runs(run.name) if r.study == study and r.seed == run.data.seed]
        taken = next((r for r in now if r.status.active or r.status.final), now[0] if now else None)
        if taken is not None:
            (result.active if taken.status.active else result.done).append(taken.id)
        return None
    if final is not None:
        result.done.append(final.id)
        result.repeats.append(rid)
    result.todo.append((run, run.training.epochs))
    return _Lane(_reread(store, rid), run, None)


def _reread(store: Store, run_id: int) -> RunRecord:
    record = store.get_run(run_id)
    assert record is not None
    return record


def _give_back(store: Store, lanes: list[_Lane]) -> None:
    """Undo the claims of a plan that failed half way: new runs deleted, stopped ones back
    to the status they had."""
    for lane in lanes:
        if lane.previous is None:
            store.forget_queued([lane.record.id])
            continue
        now = store.get_run(lane.record.id)
        if now is not None and now.status == RunStatus.QUEUED and now.pid == os.getpid():
            store.end_run(now.id, lane.previous, message=lane.message)


def _tasks(lanes: list[_Lane]) -> list[Task]:
    """Cut the planned runs into tasks: equal engine, device, lane key and position share a
    task, up to the engine's capacity; a task stands where its first run was asked for (so
    runs that train alone keep the order they were asked in). GPU groups (``fused-cuda``)
    are cut as evenly as can be (:func:`group_sizes`) and always train as lanes of the
    kernel, even a group of one."""
    groups: dict[tuple, list[list[_Lane]]] = {}
    order: list[tuple[tuple, int]] = []  # (key, chunk) in the order the chunks were begun
    for lane in lanes:
        r = lane.record
        position = None if lane.state is None else (lane.state.epoch, lane.state.step)
        # a stopped lane of a group goes on as a lane (the kernel's numbers), a stopped single
        # run alone; new runs group whenever the engine can
        kind = bool(r.grouped) if lane.previous is not None and r.epochs_done + (lane.state is not None) > 0 else None
        if r.engine == CUDA_GROUP_ENGINE:
            kind = True  # the GPU group engine trains nothing but groups
        elif r.engine != "fused":
            kind = False  # only the fused engines train lanes (a lane resumed on a torch device goes alone)
        key = (r.engine, r.device, lane_key(lane.preset), position, kind)
        capacity = group_capacity(lane.preset, RunOptions(r.device, r.engine)) if kind is not False else 1
        chunks = groups.setdefault(key, [])
        target = next((c for c in chunks if len(c) < capacity), None)
        if target is None:
            order.append((key, len(chunks)))
            chunks.append([lane])
        else:
            target.append(lane)
    for key in groups:
        if key[0] == CUDA_GROUP_ENGINE and len(groups[key]) > 1:
            every = [lane for chunk in groups[key] for lane in chunk]
            cut, start = [], 0
            for size in group_sizes(len(every), GPU_MAX_LANES):
                cut.append(every[start:start + size])
                start += size
            groups[key] = cut
            # the even cut's chunks all stand where the first one began
            order = [(k, n) for k, n in order if k != key or n == 0]
    tasks: list[Task] = []
    for key, n in order:
        chunks = groups[key] if key[0] == CUDA_GROUP_ENGINE else [groups[key][n]]
        tasks.extend(_task(chunk, key[4] is True or (key[4] is None and len(chunk) > 1)) for chunk in chunks)
    return tasks


def _task(chunk: list[_Lane], lanes_kernel: bool) -> Task:
    from fnn_tui.core.group import padded_lanes

    first = chunk[0]
    names = list(dict.fromkeys(x.record.preset for x in chunk))  # lanes may be of several presets
    seeds = ", ".join(str(x.record.seed) for x in chunk)
    label = f"{'+'.join(names)} ({'seed' if len(chunk) == 1 else 'seeds'} {seeds})"
    if any(x.state is not None for x in chunk) and len(chunk) == 1:
        label = f"run {first.record.id}: {label}"
    t = first.preset.training
    sizes = first.preset.model.sizes
    params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    done = 0 if first.state is None else first.state.epoch
    lanes = padded_lanes(len(chunk)) if len(chunk) > 1 else 8  # one run alone costs about a vector
    cost = float(lanes * max(t.epochs - done, 0) * first.preset.data.n_train * params)
    return Task(tuple(x.record.id for x in chunk), label, cost, lanes_kernel, first.record.engine, first.record.device)


def task_of(store: Store, run_ids: list[int], lanes_kernel: bool) -> Task:
    """The task of stored runs (the background worker's view of a task it was handed)."""
    records = [store.get_run(rid) for rid in run_ids]
    missing = [rid for rid, r in zip(run_ids, records) if r is None]
    if missing:
        raise ResumeError(f"no run with id {missing[0]}")
    first = records[0]
    assert first is not None
    seeds = ", ".join(str(r.seed) for r in records if r is not None)
    label = f"{first.preset} ({'seed' if len(records) == 1 else 'seeds'} {seeds})"
    return Task(tuple(run_ids), label, 0.0, lanes_kernel, first.engine, first.device)
