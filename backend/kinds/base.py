"""The contract between labdeck and a kind: what its modules provide (`KindConfig`,
`KindExperiment`, `KindExports`), what its experiment receives (`RunContext`) and what a
dry run returns (`DryRun`).

The context is the kind's only door to the run directory: it emits events,
records finished units, keeps state.json's counters and answers "should I stop?".
Kinds never write those files themselves, so the protocol (flush per line, atomic
state, redaction, seq numbers) holds for every kind by construction.

A kind's modules are plain modules, checked structurally against the Protocols below.
Optional members (hooks and declarations a kind may leave out) are read only through
the accessor functions after the Protocols, so every call site is typed and a kind
that omits one gets the documented default.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol, cast

from pydantic import BaseModel

from ..durable import STAGING_PREFIX, recover_swaps, swap_dir
from ..events import EventWriter
from ..jsonio import write_json_atomic
from ..ledger import Ledger, unit_key
from ..phase_clock import PhaseClock
from ..runs import ARTIFACTS, CHECKPOINTS, STATE, Run

if TYPE_CHECKING:
    from .spec import Curve, Metric, Table

# Metric events already emitted by `RunContext.metric_once`, across attempts (see there).
EMITTED = "emitted.jsonl"


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
        self._clock: PhaseClock | None = None
        # Called as (checkpoint name, step) at each step of a checkpoint swap
        # (durable.SWAP_STEPS); tests inject kills there.
        self.on_swap_step: Callable[[str, str], None] | None = None
        restored = recover_swaps(self.checkpoints_dir)
        if restored:
            log.warning("checkpoints %s: restored after a swap was interrupted", restored)
        self._emitted: Ledger | None = None

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
        now = time.time()
        self._clock = PhaseClock(now)
        self.ledger.sync()  # a phase end is a unit boundary: commit its records
        self.events.emit("phase", name=name, total=total)
        self.state.update(
            force=True, phase=name, done=0, total=total, phase_started=now, eta_seconds=None
        )
        self.state.update_nested("phases", **{name: {"done": 0, "total": total}})

    def progress(self, done: int, total: int | None = None, **extra: Any) -> None:
        """`done` of `total` units of the current phase; the estimate of the time left
        (from this attempt's pace) goes with it into the event and state.json."""
        total = self._phase_total if total is None else total
        now = time.time()
        left = self._clock.seconds_left(done, total, now) if self._clock else None
        eta = {} if left is None else {"eta_seconds": round(left, 1)}
        self.events.emit("progress", phase=self._phase, done=done, total=total, **eta, **extra)
        self.state.update(
            phase=self._phase,
            done=done,
            total=total,
            eta_seconds=eta.get("eta_seconds"),
            eta_at=now,
        )
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

    def metric_once(self, name: str, value: float | None, **where: Any) -> bool:
        """`metric`, unless this run already emitted `name` at this `where` (this attempt or
        an earlier one); returns whether it emitted.

        For values that summarise finished work (a level's metrics, computed from all its
        records) and must appear once however often the run was stopped and resumed. The
        run remembers them in its own small ledger (emitted.jsonl), so nothing reads the
        event stream back. The mark follows the event: a kill between the two can repeat
        the event once on resume, never lose it.
        """
        if self._emitted is None:
            self._emitted = Ledger(self.run.path / EMITTED)
        key = unit_key("metric", name, sorted(where.items()))
        if key in self._emitted:
            return False
        self.metric(name, value, **where)
        self._emitted.append(key, {"name": name, **where})
        return True

    def close(self) -> None:
        """Release the files the context opened itself (the runner owns the rest)."""
        if self._emitted is not None:
            self._emitted.close()
            self._emitted = None

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
        """Yields a staging folder; on success it replaces checkpoints/<name> crash-safely.

        A kill while writing leaves only a `.staging-*` folder, which is cleared on the
        next attempt; a kill during the swap is finished or undone when the next
        context opens the run (`durable.recover_swaps`), so a reader always finds the
        last complete checkpoint under `name`.
        """
        final = self.checkpoints_dir / name
        staging = self.checkpoints_dir / f"{STAGING_PREFIX}{name}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        yield staging
        hook = self.on_swap_step
        swap_dir(staging, final, None if hook is None else lambda step: hook(name, step))

    def checkpoint(
        self, step: int | str, path: Path, metrics: dict[str, Any] | None = None
    ) -> None:
        rel = str(Path(path).relative_to(self.run.path)) if Path(path).is_absolute() else str(path)
        self.events.emit("checkpoint", step=step, path=rel, metrics=metrics or {})


# =========================================================================== the kind contract


class KindConfig(Protocol):
    """`backend/kinds/<kind>/config.py`; must not import torch (validation stays instant).

    Required:
    - `Params`: the pydantic model of the kind's parameters (type, default, bounds and a
      description per field; `Annotated[..., Input(...)]` on inputs, see spec.py).
    - `DESCRIPTION`: one line, shown by `labdeck params` and the launch form.

    Optional (read with the accessors below; absent means the default in brackets):
    - `PRIMARY_METRIC: str` [None]: the metric in the runs table and state's key metric.
    - `METRICS: dict[str, Metric]` [every metric an outcome at DEFAULT_TOL] (spec.py).
    - `VIEWS: list[Curve | Table]` [none] (spec.py).
    - `RENAMED_METRICS: dict[str, str]` [none]: final-metric names older runs wrote, mapped
      to today's (readers rename them, so an old run still compares with a new one).
    - `ARTIFACTS: dict[str, str]` [none]: what `run:<id>/<name>` may reference.
    - `extra_commands(run_id, params) -> dict[str, str]` [none]: more `commands` entries
      for config.json (e.g. kt's `eval_explicit`).
    - `preflight(params, where) -> None` [no check]: checks that need the machine or
      files but no weights (devices, dataset cells); raises UserError. `where(name)` is the
      "source: params.name" prefix that blames a `--set` or the preset correctly.
    """

    @property
    def Params(self) -> type[BaseModel]: ...

    @property
    def DESCRIPTION(self) -> str: ...


class KindExperiment(Protocol):
    """`backend/kinds/<kind>/experiment.py` (may import torch).

    Required: `run(ctx)` (the final metrics) and `dry_run(params)` (units, memory, time
    before anything is loaded). Optional: `evaluate_run(run, params) -> dict` [none]: a
    separate evaluation phase on a finished run (`labdeck eval`).
    """

    def run(self, ctx: RunContext) -> dict[str, float]: ...

    def dry_run(self, params: Any) -> DryRun: ...


ExportFormat = Callable[[Run, Path], Path]


class KindExports(Protocol):
    """Optional `backend/kinds/<kind>/exports.py`: kind-specific `labdeck export` formats."""

    @property
    def FORMATS(self) -> dict[str, ExportFormat]: ...


class ExtraCommands(Protocol):
    def __call__(self, run_id: str, params: dict[str, Any]) -> dict[str, str]: ...


class Preflight(Protocol):
    def __call__(self, params: Any, where: Callable[[str], str]) -> None: ...


class EvaluateRun(Protocol):
    def __call__(self, run: Run, params: Any) -> dict[str, Any]: ...


def as_config(module: ModuleType) -> KindConfig:
    """A kind's config module, typed by its contract."""
    return cast("KindConfig", module)


def as_experiment(module: ModuleType) -> KindExperiment:
    """A kind's experiment module, typed by its contract."""
    return cast("KindExperiment", module)


def primary_metric(cfg: KindConfig) -> str | None:
    return cast("str | None", getattr(cfg, "PRIMARY_METRIC", None))


def declared_metrics(cfg: KindConfig | ModuleType) -> dict[str, Metric]:
    return dict(getattr(cfg, "METRICS", None) or {})


def renamed_metrics(cfg: KindConfig | ModuleType) -> dict[str, str]:
    return dict(getattr(cfg, "RENAMED_METRICS", None) or {})


def declared_views(cfg: KindConfig | ModuleType) -> list[Curve | Table]:
    return list(getattr(cfg, "VIEWS", None) or [])


def declared_artifacts(cfg: KindConfig) -> dict[str, str]:
    return dict(getattr(cfg, "ARTIFACTS", None) or {})


def extra_commands_hook(cfg: KindConfig) -> ExtraCommands | None:
    return cast("ExtraCommands | None", getattr(cfg, "extra_commands", None))


def preflight_hook(cfg: KindConfig) -> Preflight | None:
    return cast("Preflight | None", getattr(cfg, "preflight", None))


def evaluate_run_hook(exp: KindExperiment) -> EvaluateRun | None:
    return cast("EvaluateRun | None", getattr(exp, "evaluate_run", None))


def export_formats(exports: KindExports | ModuleType | None) -> dict[str, ExportFormat]:
    return dict(getattr(exports, "FORMATS", None) or {})
