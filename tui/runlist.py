"""The model behind the Runs table: one cheap `RunRow` per run directory.

Rows come from config.json (read once) and state.json (re-read only when its
mtime changes), never from events.jsonl, so 200 idle runs cost a `stat` each per
poll. Crashed detection (`effective_status`) is re-evaluated only for runs that
claim to be running, since only those can die silently.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labdeck.backend.display import main_phase
from labdeck.backend.errors import UserError
from labdeck.backend.paramcols import params_of
from labdeck.backend.runs import (
    CONFIG,
    STATE,
    Run,
    effective_status,
    is_repro_id,
    queue_gone,
    this_host,
)


@dataclass
class RunRow:
    run: Run
    kind: str = "?"
    title: str = ""
    status: str = "queued"
    phase: str | None = None
    done: int | None = None
    total: int | None = None
    started: float | None = None
    ended: float | None = None
    key_name: str | None = None
    key_value: float | None = None
    error: str | None = None
    reproduction_of: str | None = None
    eta: float | None = None
    stopped: str | None = None  # the main phase ended early, and why
    active_before: float = 0.0  # seconds run in earlier attempts
    attempt_started: float | None = None
    active_seconds: float | None = None  # when not running: total time spent running
    heartbeat: float | None = None
    tags: list[str] = field(default_factory=list)
    note: str = ""
    cpu: float | None = None  # the runner process's CPU % (this host only)
    rss: float | None = None  # and its resident memory, bytes
    _notes_mtime: int = field(default=-1, repr=False)
    group_id: str | None = None  # grid members: their group, place and coordinates
    group_title: str = ""
    group_index: int = 0
    coords: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)  # dotted, for columns and filters
    scheduler: str | None = None  # Slurm runs: "123_4 PENDING"
    queue_gone: bool = False  # queued in a local queue whose process died
    _state_mtime: int = field(default=-1, repr=False)
    _rate_origin: tuple[str | None, int, float] | None = field(default=None, repr=False)

    @property
    def id(self) -> str:
        return self.run.id

    @property
    def fraction(self) -> float:
        if self.status == "completed":
            return 1.0
        if not self.total or self.done is None:
            return 1.0 if self.status == "completed" else 0.0
        return min(1.0, self.done / self.total)

    def duration(self, now: float) -> float | None:
        """Time spent running over every attempt; time spent stopped does not count."""
        if not self.started:
            return None
        if self.status == "running" and self.attempt_started:
            return self.active_before + max(0.0, now - self.attempt_started)
        if self.status == "crashed" and self.attempt_started:
            end = self.heartbeat or self.attempt_started
            return self.active_before + max(0.0, end - self.attempt_started)
        if self.active_seconds is not None:
            return self.active_seconds
        if self.status == "crashed":  # it stopped counting when its heartbeat stopped
            return max(0.0, (self.heartbeat or self.started) - self.started)
        end = self.ended if self.ended and self.status != "running" else now
        return end - self.started

    def search_text(self) -> str:
        return f"{self.id} {self.kind} {self.title} {self.status} {' '.join(self.tags)} {self.note}".lower()


def _primary_metric(kind: str) -> str | None:
    """The kind's PRIMARY_METRIC from its config.py (schemas only, never model code)."""
    try:
        from labdeck.backend.kinds import kind_config
        from labdeck.backend.kinds.base import primary_metric

        return primary_metric(kind_config(kind))
    except Exception:
        return None


class RunList:
    """Keeps RunRows for every run under `results`, refreshed by `refresh()`."""

    def __init__(
        self,
        results: Path,
        clock=time.time,
        process_probe: Callable[[int], tuple[float, float] | None] | None = None,
    ) -> None:
        self.results = Path(results)
        self.clock = clock
        self.process_probe = process_probe or self._psutil_probe
        self.rows: dict[str, RunRow] = {}
        self._procs: dict[int, Any] = {}

    def refresh(self) -> tuple[set[str], set[str], set[str]]:
        """Rescan; returns (added, changed, removed) run ids."""
        added: set[str] = set()
        changed: set[str] = set()
        seen: set[str] = set()
        try:
            entries = sorted(os.scandir(self.results), key=lambda e: e.name)
        except OSError:
            entries = []
        now = self.clock()
        for entry in entries:
            if not entry.is_dir():
                continue
            state_path = Path(entry.path) / STATE
            try:
                mtime = state_path.stat().st_mtime_ns
            except OSError:
                if not (Path(entry.path) / CONFIG).is_file():
                    continue
                mtime = 0
            seen.add(entry.name)
            row = self.rows.get(entry.name)
            if row is None:
                row = RunRow(Run(Path(entry.path)))
                if not self._load_config(row):
                    continue
                self.rows[entry.name] = row
                added.add(entry.name)
            if mtime != row._state_mtime:
                row._state_mtime = mtime
                if self._load_state(row, now) and entry.name not in added:
                    changed.add(entry.name)
            elif row.status in ("running", "queued") and self._recheck(row):
                changed.add(entry.name)
            if self._load_notes(row) and entry.name not in added:
                changed.add(entry.name)
            if row.status == "running" and self._sample_process(row) and entry.name not in added:
                changed.add(entry.name)
        removed = set(self.rows) - seen
        for rid in removed:
            del self.rows[rid]
        return added, changed, removed

    def _load_notes(self, row: RunRow) -> bool:
        from labdeck.backend.notes import NOTES, read_notes

        try:
            mtime = (row.run.path / NOTES).stat().st_mtime_ns
        except OSError:
            mtime = 0
        if mtime == row._notes_mtime:
            return False
        row._notes_mtime = mtime
        notes = read_notes(row.run) if mtime else None
        row.tags, row.note = (notes.tags, notes.note) if notes else ([], "")
        return True

    def _sample_process(self, row: RunRow) -> bool:
        """The runner's own CPU and resident memory, like nvitop's process list."""
        state = row.run.state()
        pid = state.get("pid")
        sample = None
        if pid and state.get("host") == this_host():
            sample = self.process_probe(int(pid))
        before = (row.cpu, row.rss)
        row.cpu, row.rss = sample if sample else (None, None)
        return before != (row.cpu, row.rss)

    def _psutil_probe(self, pid: int) -> tuple[float, float] | None:
        """psutil keeps one Process per pid, so CPU % is measured between polls."""
        import psutil

        proc = self._procs.get(pid)
        try:
            if proc is None:
                proc = self._procs[pid] = psutil.Process(pid)
                proc.cpu_percent(None)  # the first reading only starts the interval
            with proc.oneshot():
                return proc.cpu_percent(None), float(proc.memory_info().rss)
        except (psutil.Error, OSError):
            self._procs.pop(pid, None)
            return None

    def _load_config(self, row: RunRow) -> bool:
        try:
            cfg = row.run.config
        except UserError as exc:
            if not (row.run.path / CONFIG).is_file():
                return False
            row.error = str(exc)
            row.status = "failed"
            return True
        row.kind = str(cfg.get("kind", "?"))
        row.params = params_of(cfg)
        row.title = str(cfg.get("title", ""))
        group = cfg.get("group")
        if isinstance(group, dict) and not is_repro_id(row.run.id):  # repros copy config
            row.group_id = group.get("id")
            row.group_title = str(group.get("title", ""))
            row.group_index = int(group.get("index", 0))
            row.coords = dict(group.get("coords", {}))
        return True

    def _load_state(self, row: RunRow, now: float) -> bool:
        before = self._signature(row)
        state = row.run.state()
        self._fill(row, state, now)
        return self._signature(row) != before

    def _recheck(self, row: RunRow) -> bool:
        state = row.run.state()
        status = effective_status(state)
        gone = queue_gone(state)
        if gone != row.queue_gone:
            row.queue_gone = gone
            return True
        if status != row.status:
            row.status = status
            row.eta = None  # a run that died keeps no ETA
            row._rate_origin = None
            row.cpu = row.rss = None
            return True
        return False

    @staticmethod
    def _signature(row: RunRow) -> tuple[Any, ...]:
        return (
            row.status,
            row.phase,
            row.done,
            row.total,
            row.key_value,
            row.ended,
            row.eta,
            row.stopped,
            row.scheduler,
            row.queue_gone,
        )

    def _fill(self, row: RunRow, state: dict[str, Any], now: float) -> None:
        row.status = effective_status(state)
        row.queue_gone = queue_gone(state)
        row.phase, row.done, row.total, row.stopped = main_phase(state)
        row.started = state.get("started") or state.get("created")
        row.ended = state.get("ended")
        row.active_before = float(state.get("active_before") or 0.0)
        row.attempt_started = state.get("attempt_started")
        row.active_seconds = state.get("active_seconds")
        row.heartbeat = state.get("heartbeat")
        row.reproduction_of = state.get("reproduction_of")
        slurm = state.get("slurm") or {}
        row.scheduler = (
            f"{slurm['job_id']} {slurm.get('state', '?')}" if slurm.get("job_id") else None
        )
        if state.get("last_error"):
            row.error = str(state["last_error"]).splitlines()[0] if state["last_error"] else None
        key = state.get("key_metric") or {}
        row.key_name, row.key_value = key.get("name"), key.get("value")
        if row.key_value is None:
            final = (row.run.summary() or {}).get("final_metrics") or {}
            name = _primary_metric(row.kind) if final else None
            if name and name in final:
                row.key_name, row.key_value = name, final[name]
        row.eta = self._eta(row, now)

    @staticmethod
    def _eta(row: RunRow, now: float) -> float | None:
        """Rate since this phase was first seen here, so no extra file has to be read."""
        if row.status != "running" or not row.total or row.done is None:
            row._rate_origin = None
            return None
        origin = row._rate_origin
        if origin is None or origin[0] != row.phase or origin[1] > row.done:
            row._rate_origin = (row.phase, row.done, now)
            return None
        _, done0, t0 = origin
        if row.done <= done0 or now <= t0:
            return None
        rate = (row.done - done0) / (now - t0)
        return (row.total - row.done) / rate

    def refresh_scheduler(self, min_interval: float = 10.0) -> None:
        """Ask the scheduler (sacct/squeue, one query) about Slurm runs not known to have
        ended, at most every `min_interval` seconds; what it says lands in state.json,
        which the next `refresh` picks up. Call from the background poll thread."""
        now = self.clock()
        if now - getattr(self, "_scheduler_checked", 0.0) < min_interval:
            return
        self._scheduler_checked = now
        live = [r.run for r in self.rows.values() if r.scheduler and r.status != "completed"]
        if live:
            from labdeck.backend.launchers import refresh

            try:
                refresh(live)
            except Exception:  # a scheduler hiccup must never break the dashboard
                pass

    def ordered(self) -> list[RunRow]:
        """Newest first: the run a researcher just launched is on top."""
        return [self.rows[k] for k in sorted(self.rows, reverse=True)]
