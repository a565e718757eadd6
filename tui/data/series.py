"""A bounded series of (x, y) points for plots of runs of any length."""

from __future__ import annotations

SERIES_CAP = 1500


class Series:
    """A bounded (x, y) series: when it outgrows `cap` it keeps every other point
    and from then on accepts one point in `stride`, so a run of any length costs
    the same memory while the latest point is always kept for display."""

    __slots__ = ("_skip", "cap", "last", "stride", "ts", "xs", "ys")

    def __init__(self, cap: int = SERIES_CAP) -> None:
        self.xs: list[float] = []
        self.ys: list[float] = []
        self.ts: list[float] = []  # wall time of each point, for the wall-time x axis
        self.cap = cap
        self.stride = 1
        self._skip = 0
        self.last: tuple[float, float, float] | None = None

    def add(self, x: float, y: float, t: float = 0.0) -> None:
        self.last = (x, y, t)
        self._skip += 1
        if self._skip < self.stride:
            return
        self._skip = 0
        self.xs.append(x)
        self.ys.append(y)
        self.ts.append(t)
        if len(self.xs) > self.cap:
            self.xs = self.xs[::2]
            self.ys = self.ys[::2]
            self.ts = self.ts[::2]
            self.stride *= 2

    def points(self) -> tuple[list[float], list[float]]:
        """All kept points plus the latest one (which the stride may have skipped)."""
        if self.last is not None and (not self.xs or self.xs[-1] != self.last[0]):
            return [*self.xs, self.last[0]], [*self.ys, self.last[1]]
        return list(self.xs), list(self.ys)

    def times(self) -> list[float]:
        """Wall times aligned with `points()`."""
        if self.last is not None and (not self.xs or self.xs[-1] != self.last[0]):
            return [*self.ts, self.last[2]]
        return list(self.ts)

    def __len__(self) -> int:
        return len(self.xs)
