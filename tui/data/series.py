"""A bounded series of (x, y) points that keeps every extreme, for runs of any length.

Downsampling by taking every n-th point (or evenly spaced windows) hides exactly what a
researcher looks for in a long run: a loss spike between two kept points. `Series`
instead keeps, for each bucket of consecutive points, the point with the smallest and
the one with the largest y (the min/max decimation of oscilloscopes and of M4,
Jugel et al., "M4: a visualization-oriented time series data aggregation", VLDB 2014).
It is incremental: one `add` per event updates the open bucket; when the number of
buckets outgrows its cap, neighbouring buckets merge pairwise (min of the mins, max of
the maxes), so memory stays bounded and the global extremes of every stretch survive.
"""

from __future__ import annotations

SERIES_CAP = 1500

Point = tuple[float, float, float]  # (x, y, wall time)


def _merge(a: tuple[Point, Point], b: tuple[Point, Point]) -> tuple[Point, Point]:
    lo = a[0] if a[0][1] <= b[0][1] else b[0]
    hi = a[1] if a[1][1] >= b[1][1] else b[1]
    return lo, hi


def _bucket_points(bucket: tuple[Point, Point]) -> list[Point]:
    lo, hi = bucket
    if lo is hi or lo == hi:
        return [lo]
    return [lo, hi] if lo[0] <= hi[0] else [hi, lo]


class Series:
    """Bounded (x, y) series: min and max of each bucket of `stride` consecutive points.

    At most `cap` points are kept (two per bucket); the first and the latest point
    are always shown."""

    __slots__ = ("_buckets", "_open", "_open_n", "cap", "first", "last", "stride")

    def __init__(self, cap: int = SERIES_CAP) -> None:
        self.cap = max(4, cap)
        self.stride = 1
        self._buckets: list[tuple[Point, Point]] = []
        self._open: tuple[Point, Point] | None = None
        self._open_n = 0
        self.first: Point | None = None
        self.last: Point | None = None

    def add(self, x: float, y: float, t: float = 0.0) -> None:
        p = (x, y, t)
        self.last = p
        if self.first is None:
            self.first = p
        b = self._open
        if b is None:
            self._open = (p, p)
        elif y < b[0][1]:
            self._open = (p, b[1])
        elif y > b[1][1]:
            self._open = (b[0], p)
        self._open_n += 1
        if self._open_n >= self.stride:
            self._buckets.append(self._open)  # type: ignore[arg-type]
            self._open, self._open_n = None, 0
            if 2 * len(self._buckets) > self.cap:
                self._compact()

    def _compact(self) -> None:
        bs = self._buckets
        merged = [_merge(bs[i], bs[i + 1]) for i in range(0, len(bs) - 1, 2)]
        if len(bs) % 2:
            merged.append(bs[-1])
        self._buckets = merged
        self.stride *= 2

    def _all(self) -> list[Point]:
        pts: list[Point] = []
        for b in self._buckets:
            pts.extend(_bucket_points(b))
        if self._open is not None:
            pts.extend(_bucket_points(self._open))
        if self.first is not None and (not pts or pts[0] != self.first):
            pts.insert(0, self.first)
        if self.last is not None and pts[-1] != self.last:
            pts.append(self.last)
        return pts

    def points(self) -> tuple[list[float], list[float]]:
        """The kept points in x order: every bucket's min and max, the first, the latest."""
        pts = self._all()
        return [p[0] for p in pts], [p[1] for p in pts]

    def times(self) -> list[float]:
        """Wall times aligned with `points()`."""
        return [p[2] for p in self._all()]

    def __len__(self) -> int:
        return sum(len(_bucket_points(b)) for b in self._buckets) + (
            len(_bucket_points(self._open)) if self._open is not None else 0
        )


def thin_extremes(xs: list[float], ys: list[float], limit: int) -> tuple[list[float], list[float]]:
    """At most about `limit` points of a drawn curve, keeping each bucket's min and max
    (and the first and last point), so thinning for the screen hides no spike."""
    n = len(xs)
    if n <= limit:
        return xs, ys
    buckets = max(1, (limit - 2) // 2)
    out: list[int] = [0]
    for b in range(buckets):
        lo_i, hi_i = 1 + b * (n - 2) // buckets, 1 + (b + 1) * (n - 2) // buckets
        if lo_i >= hi_i:
            continue
        seg = range(lo_i, hi_i)
        i_min = min(seg, key=ys.__getitem__)
        i_max = max(seg, key=ys.__getitem__)
        out.extend(sorted({i_min, i_max}))
    out.append(n - 1)
    return [xs[i] for i in out], [ys[i] for i in out]
