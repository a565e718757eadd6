"""A plotext chart of one or more named series (Monitor's choice, Compare's overlay).

Drawing with plotext costs milliseconds per frame, so the widget redraws only
when asked with new data, and callers throttle how often they ask.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from textual_plotext import PlotextPlot

from .. import fmt
from ..data.series import thin_extremes

MAX_PLOT_POINTS = 600


# Terminal counterparts of the PNG overlay's colours and markers (backend.reports), by slot.
COLORS = ("blue", "red", "green", "orange", "magenta", "cyan")
MARKERS = ("dot", "sd", "x", "+", "*", "o")


@dataclass
class Curve:
    label: str
    xs: list[float]
    ys: list[float]
    color_slot: int | None = None  # set when the curves are styled by differing parameters
    marker_slot: int | None = None
    smoothed: bool = False  # smoothing was applied (see plotting.smoothable)


def thin(xs: list[float], ys: list[float], limit: int = MAX_PLOT_POINTS) -> tuple[list, list]:
    """At most `limit` points (the terminal has fewer columns anyway), every extreme kept."""
    return thin_extremes(xs, ys, limit)


POINT_MARKS = {"dot": "●"}  # a real point stands out from the thin braille line
MARKED_POINTS = 60  # up to this many points a curve shows a marker on each real point
TINY_RANGE = 0.01  # a span under 1 % of the values' magnitude is "tiny": say Δ range


def nice_ticks(lo: float, hi: float, count: int = 5) -> tuple[list[float], list[str]]:
    """About `count` ticks on round values (1, 2, 5 × 10^k) with just enough decimals to
    tell them apart: a 0.681318–0.681550 axis reads 0.6813, 0.6814, 0.6815, not six
    decimals that make a flat curve look like a big W."""
    if not math.isfinite(lo) or not math.isfinite(hi):
        return [], []
    if hi <= lo or count < 2:  # a flat curve, or room for one label only: the top value
        return [hi], [fmt_tick(hi, 0.0)]
    raw = (hi - lo) / max(1, count - 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    v = first
    while v <= hi + step * 1e-9:
        ticks.append(v)
        v = first + len(ticks) * step
    if len(ticks) < 2:  # the round values miss the range: its ends
        ticks = [lo, hi]
        step = hi - lo
    return ticks, [fmt_tick(t, step) for t in ticks]


def fmt_tick(v: float, step: float) -> str:
    """A tick label with the decimals `step` needs, no more."""
    if step <= 0:
        return fmt.number(v)
    if abs(v) >= 1e6 or (v != 0 and abs(v) < 1e-4):
        return f"{v:.2e}"
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    return f"{v:.{decimals}f}"


def range_note(curves: list[Curve]) -> str:
    """ "Δ range …" when the drawn values span a tiny part of their magnitude, so a flat
    curve is read as flat whatever the autoscaled axis suggests."""
    ys = [y for c in curves for y in c.ys if math.isfinite(y)]
    if len(ys) < 2:
        return ""
    lo, hi = min(ys), max(ys)
    magnitude = max(abs(lo), abs(hi))
    if magnitude == 0 or (hi - lo) >= TINY_RANGE * magnitude:
        return ""
    return f"Δ range {fmt.number(hi - lo, 2)} ({fmt.number(lo, 6)}–{fmt.number(hi, 6)})"


class SeriesPlot(PlotextPlot):
    """Line plot of curves; an empty selection shows a hint instead of blank axes.

    Honest by construction: markers only on real points (a few-level sweep is not
    filled with dots between its levels), round ticks with few digits, a Δ range in the
    title when the span is tiny, and legends with whole names."""

    _y_span: tuple[float, float] | None = None  # the finite y range of the drawn curves
    _tick_rows = -1  # the height the current y ticks were counted for

    def draw(self, curves: list[Curve], title: str = "", xlabel: str = "") -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.xlabel(xlabel)
        drawn = [c for c in curves if c.xs]
        ys_all: list[float] = []
        xs_all: list[float] = []
        for slot, c in enumerate(drawn):
            xs, ys = thin(c.xs, c.ys)
            xs_all += xs
            ys_all += ys
            style: dict[str, str] = {}
            color = c.color_slot if c.color_slot is not None else slot
            style["color"] = COLORS[color % len(COLORS)]
            if len(xs) <= MARKED_POINTS:
                slot_marker = MARKERS[(c.marker_slot or 0) % len(MARKERS)]
                marker = POINT_MARKS.get(slot_marker, slot_marker)
                if len(xs) > 1:
                    plt.plot(xs, ys, marker="braille", **style)  # the line between them
                plt.scatter(xs, ys, marker=marker, label=c.label, **style)  # the real points
            else:
                plt.plot(xs, ys, label=c.label, marker="braille", **style)
        finite = [y for y in ys_all if math.isfinite(y)]
        self._y_span = (min(finite), max(finite)) if finite else None
        self._fit_y_ticks()
        distinct_x = sorted(set(xs_all))
        if 1 < len(distinct_x) <= 8:  # a sweep: a tick on each level it measured
            plt.xticks(distinct_x, [fmt.number(x) for x in distinct_x])
        note = range_note(drawn)
        plt.title(" · ".join(x for x in (title, note) if x))
        if not drawn:
            plt.title(title or "no data for the chosen series yet")
        self.refresh()

    def render(self):
        """The y ticks follow the height the plot has when it is drawn on screen, not
        only the height it had when data arrived (a plot filled before layout would keep
        ticks counted for another size)."""
        if self._tick_rows != self.size.height:
            self._fit_y_ticks()
        return super().render()

    def _fit_y_ticks(self) -> None:
        self._tick_rows = self.size.height
        if self._y_span is None:
            return
        # two rows per label at most (title, frame and x labels take 5 rows): a
        # one-row plot gets one label, not two fighting for the same row
        count = max(1, min(5, (self.size.height - 5) // 2))
        ticks, labels = nice_ticks(self._y_span[0], self._y_span[1], count)
        if ticks:
            self.plt.yticks(ticks, labels)
