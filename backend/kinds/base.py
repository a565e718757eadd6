"""What a kind's experiment receives (`RunContext`) and returns from a dry run (`DryRun`).

The context is the kind's only door to the run directory: it emits events,
records finished units, keeps state.json's counters and answers "should I stop?".
Kinds never write those files themselves, so the protocol (flush per line, atomic
state, redaction, seq numbers) holds for every kind by construction.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ..events import EventWriter
from ..jsonio import write_json_atomic
from ..ledger import Ledger
from ..runs import ARTIFACTS, CHECKPOINTS, STATE, Run


class StopRequested(Exception):
    """Raised by `RunContext.check_stop()`; the runner turns it into status `interrupted`."""


@dataclass
class DryRun:
    """What `run --dry-run` and the dashboard's launch form show before anything runs."""

    units: int
    memory_bytes: int | None = None
    seconds: float | None = None
    lines: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "units": self.units,
            "memory_bytes": self.memory_bytes,
            "seconds": self.seconds,
            "lines": self.lines,
        }


class StateKeeper:
    """In-memory state.json with throttled writes; the heartbeat thread calls `flush`."""

    def __init__(self, run: Run, min_interval: float = 0.5) -> None:
        self.run = run
        self._state = run.state()
        self._lock = threading.Lock()
        self._last_write = 0.0
        self._min_interval = min_interval

    def update(self, force: bool = False, **changes: Any) -> None:
        with self._lock:
            self._state.update(changes)
            if force or time.time() - self._last_write >= self._min_interval:
                self._write_locked()

    def update_nested(self, key: str, **changes: Any) -> None:
        with self._lock:
            self._state.setdefault(key, {}).update(changes)
            if time.time() - self._last_write >= self._min_interval:
                self._write_locked()

    def flush(self, heartbeat: bool = True) -> None:
        with self._lock:
            if heartbeat:
                self._state["heartbeat"] = time.time()
            self._write_locked()

    def _write_locked(self) -> None:
        write_json_atomic(self.run.path / STATE, self._state)
        self._last_write = time.time()


class RunContext:
    """Handed to a kind's `run(ctx)`; everything a unit of work needs to report itself."""

    def __init__(
        self,
        run: Run,
        params: BaseModel,
        events: EventWriter,
        ledger: Ledger,
        state: StateKeeper,
        log: logging.Logger,
        stop_event: threading.Event,
        primary_metric: str | None = None,
    ) -> None:
        self.run = run
        self.params = params
        self.events = events
        self.ledger = ledger
        self.state = state
        self.log = log
        self._stop = stop_event
        self._primary = primary_metric
        self._phase: str | None = None
        self._phase_total: int | None = None

    # ---- paths
    @property
    def run_dir(self) -> Path:
        return self.run.path

    @property
    def checkpoints_dir(self) -> Path:
        return self.run.path / CHECKPOINTS

    @property
    def artifacts_dir(self) -> Path:
        return self.run.path / ARTIFACTS

    def input_path(self, name: str) -> Path | None:
        """The local path an `Input` parameter resolved to at creation (see backend/inputs.py).

        None when the parameter was empty or names a hub id. Kinds read inputs through
        this rather than the raw value, so a run reference or a relative path means the
        same thing however the runner was started.
        """
        entry = self.run.config.get("inputs", {}).get(name)
        return Path(entry["path"]) if entry and entry.get("path") else None

    # ---- stopping
    def should_stop(self) -> bool:
        return self._stop.is_set()

    def check_stop(self) -> None:
        """Call between units: a requested stop ends the run here, after the last record."""
        if self._stop.is_set():
            raise StopRequested()

    # ---- events
    def emit(self, type: str, **fields: Any) -> None:
        self.events.emit(type, **fields)

    def phase(self, name: str, total: int | None) -> None:
        self._phase, self._phase_total = name, total
        self.events.emit("phase", name=name, total=total)
        self.state.update(force=True, phase=name, done=0, total=total)
        self.state.update_nested("phases", **{name: {"done": 0, "total": total}})

    def progress(self, done: int, total: int | None = None, **extra: Any) -> None:
        total = self._phase_total if total is None else total
        self.events.emit("progress", phase=self._phase, done=done, total=total, **extra)
        self.state.update(phase=self._phase, done=done, total=total)
        if self._phase:
            self.state.update_nested("phases", **{self._phase: {"done": done, "total": total}})

    def end_phase(self, done: int, reason: str) -> None:
        """The current phase ends before its total (early stopping): say where and why, so
        the dashboard and `ls` show `train 34/80 stopped early` instead of a stuck bar."""
        total = self._phase_total
        self.events.emit("phase_end", phase=self._phase, done=done, total=total, reason=reason)
        if self._phase:
            self.state.update_nested(
                "phases", **{self._phase: {"done": done, "total": total, "stopped": reason}}
            )
        self.info(f"{self._phase} stopped at {done}/{total}: {reason}")

    def metric(self, name: str, value: float | None, **where: Any) -> None:
        """A named value at a `step`, `epoch` or `level` (optionally per `group`)."""
        self.events.emit("metric", name=name, value=value, **where)
        self.state.update_nested("metrics", **{name: value})
        if name == self._primary:
            self.state.update(key_metric={"name": name, "value": value})

    def batch(self, size: int, reason: str, **extra: Any) -> None:
        self.events.emit("batch", size=size, reason=reason, **extra)
        self.state.update(batch_size=size)

    def trajectory(self, entry: dict[str, Any]) -> None:
        self.events.emit("trajectory", **entry)

    def info(self, message: str) -> None:
        """A line for both runner.log and the dashboard's log tail."""
        self.log.info(message)
        self.events.emit("log", level="info", message=message)

    def warn(self, message: str) -> None:
        self.log.warning(message)
        self.events.emit("log", level="warning", message=message)

    # ---- records and checkpoints
    def is_done(self, key: str) -> bool:
        return key in self.ledger

    def record(self, key: str, record: dict[str, Any]) -> None:
        self.ledger.append(key, record)
        self.state.update(records=len(self.ledger))

    @contextlib.contextmanager
    def stage_checkpoint(self, name: str) -> Iterator[Path]:
        """Yields a staging folder; on success it is renamed to checkpoints/<name> in one step.

        A kill while writing leaves only a `.staging-*` folder, which is ignored and
        cleared on the next attempt, so a checkpoint on disk is always complete.
        """
        final = self.checkpoints_dir / name
        staging = self.checkpoints_dir / f".staging-{name}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        yield staging
        if final.exists():
            old = self.checkpoints_dir / f".old-{name}"
            shutil.rmtree(old, ignore_errors=True)
            final.rename(old)
            staging.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.rename(final)

    def checkpoint(
        self, step: int | str, path: Path, metrics: dict[str, Any] | None = None
    ) -> None:
        rel = str(Path(path).relative_to(self.run.path)) if Path(path).is_absolute() else str(path)
        self.events.emit("checkpoint", step=step, path=rel, metrics=metrics or {})
