"""The incremental model of one run that Monitor and Compare render.

`RunView` folds events.jsonl into bounded structures (memory history, batch
timeline, phases with ETA, metric and trajectory series, checkpoint/level
table, log tail). It is pure Python so it can be unit-tested and benchmarked
without a screen, and it only ever reads files, so it works the same for a run
that is still being written and for one that finished long ago.

Reading is split from folding: `read()` does the file work (meant for a worker
thread) and returns a `ReadBatch`; `apply()` folds it (cheap, meant for the UI
thread, so widgets never see a half-updated model). `poll()` does both.

Huge files: the first read takes only the last `tail_bytes` of events.jsonl in
full, so the first frame comes at once. The older bytes are then skimmed (skim.py):
every event that feeds a plot or a table is found with byte searches and parsed, so
nothing a full fold would draw is missing. Memory stays bounded because every series
keeps only the min and max of buckets that double in size as it grows (series.py),
which keeps every spike.
"""

from __future__ import annotations

import os
from collections import deque
from pathlib import Path
from typing import Any

from labdeck.backend.events import EventReader
from labdeck.backend.runs import Run

from .series import SERIES_CAP, Series
from .skim import skim_older
from .structures import (
    BatchMark,
    DeviceHistory,
    LogLine,
    Phase,
    ReadBatch,
    as_number,
    flatten,
    fmt_x,
)

TAIL_BYTES = 1024 * 1024
LOG_LINES = 400
BATCH_MARKS = 2000
TABLE_ROWS = 500
_PROGRESS_FIELDS = {
    "t",
    "seq",
    "type",
    "phase",
    "done",
    "total",
    "eta_seconds",
}  # the runner's ETA: shown as ETA


class RunView:
    """Everything Monitor and Compare show about one run, folded from its files."""

    def __init__(
        self,
        run: Run | Path,
        tail_bytes: int = TAIL_BYTES,
        series_cap: int = SERIES_CAP,
        skim: bool = True,
    ) -> None:
        self.run = run if isinstance(run, Run) else Run(Path(run))
        self.tail_bytes = tail_bytes
        self.series_cap = series_cap
        self._skim = skim
        self._reader: EventReader | None = None
        self.state: dict[str, Any] = {}
        self.status: str = "queued"
        self.bad_lines = 0
        self.problem: str | None = None
        self.skimmed_bytes = 0
        self.needs_skim = False  # the first read took only the tail; older bytes are pending
        self._replay: list[dict[str, Any]] = []  # events folded while the skim is pending
        self._reset()

    def _reset(self) -> None:
        """Empty every folded structure (also used to refold once the skim arrives)."""
        self.events_seen = 0
        self.first_t: float | None = None
        self.last_t: float | None = None
        self.last_seq: int = -1
        self.devices: dict[str, DeviceHistory] = {}
        self.batches: deque[BatchMark] = deque(maxlen=BATCH_MARKS)
        self.batch_counts: dict[str, int] = {}
        self.phases: dict[str, Phase] = {}
        self.current_phase: str | None = None
        self.metrics: dict[str, Series] = {}
        self.axes: dict[str, str] = {}  # series name -> the x field its events carried
        self.epoch_marks: list[tuple[float, float]] = []  # (t, epoch): wall time -> epoch
        self.trajectory: dict[str, Series] = {}
        self.trajectory_entries = 0
        self.table: dict[tuple[str, str, str], dict[str, float | str | None]] = {}
        self.table_columns: list[str] = []
        self.table_version = getattr(self, "table_version", 0) + 1
        self.checkpoints: list[dict[str, Any]] = []
        self.log: deque[LogLine] = deque(maxlen=LOG_LINES)
        self.log_count = getattr(self, "log_count", 0)  # only grows: widgets append by it
        self.errors: list[str] = []
        # events of the types a kind's Table views list (keep_events), newest TABLE_ROWS
        self.kept: dict[str, deque[dict[str, Any]]] = {
            t: deque(maxlen=TABLE_ROWS) for t in getattr(self, "_kept_types", ())
        }
        self.kept_version = getattr(self, "kept_version", 0) + 1

    # ------------------------------------------------------------------ reading

    def read(self) -> ReadBatch:
        """Read what is new on disk (file work only; safe to call from a thread)."""
        path = self.run.events_path
        events: list[dict[str, Any]] = []
        error = None
        try:
            state = self.run.state()
            from labdeck.backend.runs import effective_status

            status = effective_status(state)
        except Exception as exc:  # a bad state.json must not blank the screen
            state, status = None, None
            error = f"{self.run.path / 'state.json'}: {exc}"
        if self._reader is None:
            self._reader = EventReader.from_tail(path, self.tail_bytes)
            self.skimmed_bytes = self._reader.offset
            self.needs_skim = self._skim and self.skimmed_bytes > 0
        try:
            events.extend(self._reader.read_new())
        except OSError as exc:
            error = f"{path}: {exc}"
        return ReadBatch(events, state, status, self._reader.bad_lines, error)

    def apply(self, batch: ReadBatch) -> set[str]:
        """Fold a batch into the model; returns the names of the sections that changed."""
        changed: set[str] = set()
        if batch.state is not None and batch.state != self.state:
            self.state = batch.state
            changed.add("state")
        if batch.status is not None and batch.status != self.status:
            self.status = batch.status
            changed.add("state")
        if batch.bad_lines != self.bad_lines:
            self.bad_lines = batch.bad_lines
            changed.add("problem")
        if batch.error != self.problem:
            self.problem = batch.error
            changed.add("problem")
        if self.needs_skim:
            self._replay.extend(batch.events)
        changed |= self._fold_all(batch.events)
        return changed

    def read_older(self) -> list[dict[str, Any]]:
        """The skim of the bytes before the tail (file work only; for a worker thread)."""
        try:
            return skim_older(
                self.run.events_path, self.skimmed_bytes, getattr(self, "_kept_types", ())
            )
        except OSError as exc:
            self.problem = f"{self.run.events_path}: {exc}"
            return []

    def merge_older(self, older: list[dict[str, Any]]) -> set[str]:
        """Refold: the skimmed older events first, then everything folded since the tail.

        The first frame shows the tail at once; history arrives a moment later.
        """
        replay, self._replay = self._replay, []
        self.needs_skim = False
        self._reset()
        self._fold_all(older)
        self._fold_all(replay)
        return {"memory", "batch", "phases", "metrics", "trajectory", "log", "state"}

    def _fold_all(self, events: list[dict[str, Any]]) -> set[str]:
        changed: set[str] = set()
        for ev in events:
            seq = ev.get("seq")
            if isinstance(seq, int):
                if seq <= self.last_seq:
                    continue  # already folded (skim and tail overlap)
                self.last_seq = seq
            section = self._fold(ev)
            if section:
                changed.add(section)
        return changed

    def poll(self) -> set[str]:
        """Read and fold synchronously, skim included (tests, Compare, scripts)."""
        changed = self.apply(self.read())
        if self.needs_skim:
            changed |= self.merge_older(self.read_older())
        return changed

    # ------------------------------------------------------------------ folding

    def _fold(self, ev: dict[str, Any]) -> str | None:
        self.events_seen += 1
        t = as_number(ev.get("t")) or 0.0
        if self.first_t is None:
            self.first_t = t
        self.last_t = t
        kind = ev.get("type")
        kept = self.kept.get(kind) if isinstance(kind, str) else None
        if kept is not None:
            kept.append(ev)
            self.kept_version += 1
        handler = getattr(self, f"_on_{kind}", None)
        if handler is None:
            return "tables" if kept is not None else None
        try:
            return handler(ev, t)
        except (TypeError, ValueError, AttributeError):
            # An event of a known type with unexpected fields: count it, keep going.
            self.bad_lines += 1
            return "problem"

    def _on_memory(self, ev: dict[str, Any], t: float) -> str:
        devices = ev.get("devices")
        if devices is None:
            devices = [ev]
        for d in devices:
            key = str(d.get("device", "?"))
            dev = self.devices.get(key)
            if dev is None:
                dev = self.devices[key] = DeviceHistory(key, history=Series(self.series_cap))
            dev.name = str(d.get("name") or dev.name)
            dev.source = str(d.get("source") or dev.source)
            dev.total = as_number(d.get("total")) or dev.total
            dev.used = as_number(d.get("used")) or 0.0
            dev.util = as_number(d.get("util"))
            dev.temperature = as_number(d.get("temperature"))
            dev.history.add(t, dev.used)
        return "memory"

    def _on_batch(self, ev: dict[str, Any], t: float) -> str:
        reason = str(ev.get("reason", "?"))
        self.batches.append(BatchMark(t, int(ev.get("size", 0)), reason))
        self.batch_counts[reason] = self.batch_counts.get(reason, 0) + 1
        return "batch"

    def _on_phase(self, ev: dict[str, Any], t: float) -> str:
        name = str(ev.get("name", "?"))
        total = ev.get("total")
        ph = self.phases.get(name) or Phase(name)
        ph.total = int(total) if total is not None else None
        ph.t_start, ph.t_last, ph.done_start = t, t, ph.position
        self.phases[name] = ph
        self.current_phase = name
        return "phases"

    def _on_phase_end(self, ev: dict[str, Any], t: float) -> str:
        name = str(ev.get("phase") or self.current_phase or "run")
        ph = self.phases.get(name) or Phase(name, t_start=t)
        ph.done = int(ev.get("done") or ph.done)
        ph.stopped = str(ev.get("reason") or "stopped early")
        ph.t_last = t
        self.phases[name] = ph
        return "phases"

    def _on_progress(self, ev: dict[str, Any], t: float) -> str:
        name = str(ev.get("phase") or self.current_phase or "run")
        ph = self.phases.get(name)
        if ph is None:
            ph = self.phases[name] = Phase(name, t_start=t, done_start=int(ev.get("done", 0)))
        ph.done = int(ev.get("done", 0))
        if ev.get("total") is not None:
            ph.total = int(ev["total"])
        ph.note({k: v for k, v in ev.items() if k not in _PROGRESS_FIELDS})
        ph.t_last = t
        self.current_phase = name
        return "phases"

    def _on_metric(self, ev: dict[str, Any], t: float) -> str | None:
        value = as_number(ev.get("value"))
        name = str(ev.get("name", "?"))
        group = ev.get("group")
        axis = next((a for a in ("level", "epoch", "step") if ev.get(a) is not None), None)
        x = ev.get(axis) if axis else None
        key = f"{name}[{group}]" if group not in (None, "") else name
        if value is not None:
            series = self.metrics.get(key)
            if series is None:
                series = self.metrics[key] = Series(self.series_cap)
            xn = as_number(x)
            series.add(xn if xn is not None else float(self.events_seen), value, t)
            self.axes.setdefault(key, axis or "event")
        if axis == "epoch":
            xe = as_number(x)
            if xe is not None and (not self.epoch_marks or xe > self.epoch_marks[-1][1]):
                self.epoch_marks.append((t, xe))
        if axis in ("level", "epoch"):
            self._table_set((axis, fmt_x(x), "" if group is None else str(group)), name, value)
        return "metrics"

    def _table_set(self, row: tuple[str, str, str], column: str, value: float | str | None) -> None:
        if column not in self.table_columns:
            self.table_columns.append(column)
        if row not in self.table and len(self.table) >= TABLE_ROWS:
            self.table.pop(next(iter(self.table)))
        self.table.setdefault(row, {})[column] = value
        self.table_version += 1

    def _on_checkpoint(self, ev: dict[str, Any], t: float) -> str:
        metrics = ev.get("metrics") or {}
        self.checkpoints.append({"step": ev.get("step"), "path": ev.get("path"), "t": t})
        self.checkpoints = self.checkpoints[-TABLE_ROWS:]
        for name, value in metrics.items():
            if isinstance(value, dict | list):  # per-question detail: the kind's own tables
                continue
            # a label (em's em_rate convention) is shown as itself, not as a missing number
            cell = value if isinstance(value, str) else as_number(value)
            self._table_set(("checkpoint", fmt_x(ev.get("step")), ""), str(name), cell)
        return "metrics"

    def _on_trajectory(self, ev: dict[str, Any], t: float) -> str:
        entry = {k: v for k, v in ev.items() if k not in ("t", "seq", "type")}
        x = as_number(entry.get("epoch"))
        x = float(self.trajectory_entries) if x is None else x
        self.trajectory_entries += 1
        for name, value in flatten(entry).items():
            if name == "epoch":
                continue
            series = self.trajectory.get(name)
            if series is None:
                series = self.trajectory[name] = Series(self.series_cap)
            series.add(x, value, t)
        return "trajectory"

    def _on_log(self, ev: dict[str, Any], t: float) -> str:
        self._log(LogLine(t, str(ev.get("level", "info")), str(ev.get("message", ""))))
        return "log"

    def _on_error(self, ev: dict[str, Any], t: float) -> str:
        msg = str(ev.get("message", ""))
        self.errors.append(msg)
        self._log(LogLine(t, "error", msg))
        return "log"

    def _on_status(self, ev: dict[str, Any], t: float) -> str:
        self._log(LogLine(t, "status", str(ev.get("status", ""))))
        return "log"

    def _log(self, line: LogLine) -> None:
        self.log.append(line)
        self.log_count += 1

    # ------------------------------------------------------------------ queries

    def series(self, name: str) -> Series | None:
        """A metric or trajectory series by its display name."""
        if name.startswith("trajectory:"):
            return self.trajectory.get(name.removeprefix("trajectory:"))
        return self.metrics.get(name)

    def keep_events(self, types: list[str]) -> None:
        """Also keep the latest events of these types (for a kind's declared tables);
        call before the first read."""
        self._kept_types = tuple(types)
        for t in types:
            self.kept.setdefault(t, deque(maxlen=TABLE_ROWS))

    def axis(self, name: str) -> str:
        """The x field a series was emitted with (step, epoch, level)."""
        return "epoch" if name.startswith("trajectory:") else self.axes.get(name, "step")

    def epoch_at(self, t: float) -> float | None:
        """Fractional epoch at wall time t, from the times epoch-tagged metrics arrived
        (epoch e ends when its metrics arrive): puts step series on an epoch axis."""
        marks = self.epoch_marks
        if not marks:
            return None
        start = self.first_t if self.first_t is not None else marks[0][0]
        prev_t, prev_e = start, marks[0][1] - 1
        for mt, me in marks:
            if t <= mt:
                span = mt - prev_t
                frac = (t - prev_t) / span if span > 0 else 1.0
                return prev_e + (me - prev_e) * max(0.0, min(1.0, frac))
            prev_t, prev_e = mt, me
        return prev_e

    def series_names(self) -> list[str]:
        return sorted(self.metrics) + [f"trajectory:{n}" for n in sorted(self.trajectory)]

    def table_rows(self) -> list[tuple[tuple[str, str, str], dict[str, float | str | None]]]:
        def sort_key(item: tuple[tuple[str, str, str], Any]) -> tuple[str, str, float, str]:
            (axis, x, group), _ = item
            try:
                xv = float(x)
            except ValueError:
                xv = float("inf")
            return (axis, group, xv, x)

        return sorted(self.table.items(), key=sort_key)

    def problem_line(self) -> str | None:
        """One line naming what is wrong and where, or None."""
        parts = []
        if self.problem:
            parts.append(self.problem)
        if self.bad_lines:
            parts.append(f"{self.run.events_path}: skipped {self.bad_lines} corrupt event line(s)")
        return "; ".join(parts) or None

    @property
    def events_size(self) -> int:
        try:
            return os.path.getsize(self.run.events_path)
        except OSError:
            return 0
