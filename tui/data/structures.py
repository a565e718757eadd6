"""The small records a RunView folds events into, and helpers on event fields."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from labdeck.backend.paramcols import flatten_params
from labdeck.backend.units import format_number

from .series import Series


@dataclass
class DeviceHistory:
    device: str
    name: str = ""
    source: str = "?"
    total: float = 0.0
    used: float = 0.0
    util: float | None = None
    temperature: float | None = None
    history: Series = field(default_factory=Series)

    @property
    def fraction(self) -> float:
        return self.used / self.total if self.total else 0.0


@dataclass
class BatchMark:
    t: float
    size: int
    reason: str


@dataclass
class Phase:
    """Progress of one phase; the ETA comes from the rate observed since the phase
    (re)started, so a resumed run does not count skipped units as speed.

    Whatever else the latest progress event says is kept in `extra` and shown as it
    is (`status running`, `failed 2`). A pair such as `batch`/`batches` (or
    `item`/`items_total`) is progress inside the current unit: it makes the position
    fractional (epoch 3 + batch 12/50), so a phase of few long units has a rate and
    an ETA before its first unit ends.
    """

    name: str
    total: int | None = None
    done: int = 0
    t_start: float | None = None
    done_start: float = 0.0
    t_last: float | None = None
    stopped: str | None = None  # why the phase ended before its total (early stopping)
    extra: dict[str, Any] = field(default_factory=dict)
    sub: tuple[str, float, float] | None = None  # (unit name, done, total) inside a unit

    @property
    def position(self) -> float:
        """Units done, with the current unit's share when the events say it."""
        if self.sub and self.sub[2] > 0:
            return self.done + min(1.0, self.sub[1] / self.sub[2])
        return float(self.done)

    @property
    def fraction(self) -> float:
        if not self.total:
            return 0.0
        return min(1.0, self.position / self.total)

    @property
    def rate(self) -> float | None:
        if self.t_start is None or self.t_last is None:
            return None
        dt = self.t_last - self.t_start
        dn = self.position - self.done_start
        return dn / dt if dt > 0 and dn > 0 else None

    @property
    def eta(self) -> float | None:
        if self.stopped:
            return 0.0
        if not self.total or self.done >= self.total:
            return 0.0 if self.total and self.done >= self.total else None
        rate = self.rate
        return (self.total - self.position) / rate if rate else None

    def note(self, values: dict[str, Any]) -> None:
        """Keep the event's other fields; find a (name, names) pair of progress inside a unit."""
        self.extra = values
        self.sub = None
        for key, value in values.items():
            n = as_number(value)
            if n is None or isinstance(value, bool):
                continue
            for total_key in (f"{key}s", f"{key}_total", f"{key}es"):
                total = as_number(values.get(total_key))
                if total:
                    self.sub = (key, n, total)
                    return

    def extra_text(self) -> str:
        """The event's other fields for a person: `batch 12/50 · status running`."""
        parts = []
        skip = set()
        if self.sub:
            key, n, total = self.sub
            parts.append(f"{key} {fmt_x(n)}/{fmt_x(total)}")
            skip = {key, f"{key}s", f"{key}_total", f"{key}es"}
        for key, value in self.extra.items():
            if key in skip or value is None or isinstance(value, dict | list):
                continue
            n = as_number(value)
            shown = format_number(value) if n is not None and not isinstance(value, bool) else value
            parts.append(f"{key} {shown}")
        return " · ".join(str(p) for p in parts)


@dataclass
class LogLine:
    t: float
    level: str
    message: str


@dataclass
class ReadBatch:
    """What one `read()` found: new events (in order), the state, the bad-line count."""

    events: list[dict[str, Any]]
    state: dict[str, Any] | None
    status: str | None
    bad_lines: int
    error: str | None = None


def as_number(v: Any) -> float | None:
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, int | float):
        return float(v)
    return None


def flatten(entry: dict[str, Any]) -> dict[str, float]:
    """Numeric leaves of a (nested) trajectory entry as dotted names."""
    leaves = ((name, as_number(v)) for name, v in flatten_params(entry).items())
    return {name: n for name, n in leaves if n is not None}


def fmt_x(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def field_of(event: dict[str, Any], dotted: str) -> Any:
    """A (dotted) field of an event: `metrics.val_auc` reaches into a dict."""
    value: Any = event
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def pick_default(names: list[str], primary: str | None) -> str:
    """The series to plot first: the kind's primary metric (any group), else a loss."""
    for candidate in (primary, "loss", "trajectory:loss", "train_loss"):
        if not candidate:
            continue
        for n in names:
            if n == candidate or n.startswith(candidate + "["):
                return n
    return names[0]
