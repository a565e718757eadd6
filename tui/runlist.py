"""The model behind the Runs table: one cheap `RunRow` per run directory.

Rows come from config.json (read once) and state.json (re-read only when its
mtime changes), never from events.jsonl, so 200 idle runs cost a `stat` each per
poll. Crashed detection (`effective_status`) is re-evaluated only for runs that
claim to be running, since only those can die silently.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labdeck.backend.errors import UserError
from labdeck.backend.runs import CONFIG, STATE, Run, effective_status, is_repro_id


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
    group_id: str | None = None  # grid members: their group, place and coordinates
    group_title: str = ""
    group_index: int = 0
    coords: dict[str, Any] = field(default_factory=dict)
    scheduler: str | None = None  # Slurm runs: "123_4 PENDING"
    _state_mtime: int = field(default=-1, repr=False)
    _rate_origin: tuple[str | None, int, float] | None = field(default=None, repr=False)

    @property
    def id(self) -> str:
        return self.run.id

    @property
    def fraction(self) -> float:
        if not self.total or self.done is None:
            return 1.0 if self.status == "completed" else 0.0
        return min(1.0, self.done / self.total)

    def duration(self, now: float) -> float | None:
        if not self.started:
            return None
        end = self.ended if self.ended and self.status != "running" else now
        return end - self.started

    def search_text(self) -> str:
        return f"{self.id} {self.kind} {self.title} {self.status}".lower()


def _primary_metric(kind: str) -> str | None:
    """The kind's PRIMARY_METRIC from its config.py (schemas only, never model code)."""
    try:
        from labdeck.backend.kinds import kind_config

        return getattr(kind_config(kind), "PRIMARY_METRIC", None)
    except Exception:
        return None


class RunList:
    """Keeps RunRows for every run under `results`, refreshed by `refresh()`."""

    def __init__(self, results: Path, clock=time.time) -> None:
        self.results = Path(results)
        self.clock = clock
        self.rows: dict[str, RunRow] = {}

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
        removed = set(self.rows) - seen
        for rid in removed:
            del self.rows[rid]
        return added, changed, removed

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
        if status != row.status:
            row.status = status
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
            row.scheduler,
        )

    def _fill(self, row: RunRow, state: dict[str, Any], now: float) -> None:
        row.status = effective_status(state)
        row.phase = state.get("phase")
        row.done = state.get("done")
        row.total = state.get("total")
        row.started = state.get("started") or state.get("created")
        row.ended = state.get("ended")
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
