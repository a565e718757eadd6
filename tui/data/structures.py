"""The small records a RunView folds events into, and helpers on event fields."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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
    (re)started, so a resumed run does not count skipped units as speed."""

    name: str
    total: int | None = None
    done: int = 0
    t_start: float | None = None
    done_start: int = 0
    t_last: float | None = None
    stopped: str | None = None  # why the phase ended before its total (early stopping)

    @property
    def fraction(self) -> float:
        if not self.total:
            return 0.0
        return min(1.0, self.done / self.total)

    @property
    def rate(self) -> float | None:
        if self.t_start is None or self.t_last is None:
            return None
        dt = self.t_last - self.t_start
        dn = self.done - self.done_start
        return dn / dt if dt > 0 and dn > 0 else None

    @property
    def eta(self) -> float | None:
        if self.stopped:
            return 0.0
        if not self.total or self.done >= self.total:
            return 0.0 if self.total and self.done >= self.total else None
        rate = self.rate
        return (self.total - self.done) / rate if rate else None


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


def flatten(entry: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a (nested) trajectory entry as dotted names."""
    out: dict[str, float] = {}
    for k, v in entry.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, name + "."))
        else:
            n = as_number(v)
            if n is not None:
                out[name] = n
    return out


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
