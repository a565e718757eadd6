"""One chart of the Overlay grid: several runs' curves of one metric on shared axes.

Lines come from `tui.overlay.lines_for` (colours fixed per run, the baseline last so
it is drawn on top); a folded seed set is its mean with the min and max as dotted
edges. Short series get a marker at each real point only; nothing is smoothed.
"""

from __future__ import annotations

from textual_plotext import PlotextPlot

from ..overlay import Line

DENSE = 40  # above this many points a line is drawn without point markers
MAX_POINTS = 400
MARKED_LINES = 4  # beyond this many lines, point markers cost more than they tell  # the terminal has fewer columns than this anyway


def _thin(xs: list[float], ys: list[float]) -> tuple[list[float], list[float]]:
    n = min(len(xs), len(ys))
    xs, ys = xs[:n], ys[:n]
    if n <= MAX_POINTS:
        return xs, ys
    step = n / MAX_POINTS
    idx = [int(i * step) for i in range(MAX_POINTS - 1)] + [n - 1]
    return [xs[i] for i in idx], [ys[i] for i in idx]


def ticks(lo: float, hi: float, count: int = 4) -> tuple[list[float], list[str]]:
    """Up to `count` ticks at round values with only the digits that tell them apart,
    so a flat series does not look like a big swing drawn with 6-decimal labels."""
    import math

    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [], []
    if hi - lo <= 0:
        return [lo], [f"{lo:.4g}"]
    raw = (hi - lo) / max(1, count - 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    values = []
    v = first
    while v <= hi + step * 1e-9 and len(values) < count + 2:
        values.append(round(v, 12))
        v += step
    digits = next(d for d in range(12) if abs(round(step, d) - step) < step * 1e-6)
    return values, [f"{x:.{digits}f}" for x in values]


def _dim(colour):
    """The same hue, darker: a band edge under its mean line."""
    if isinstance(colour, tuple):
        return tuple(int(c * 0.5) for c in colour)
    return colour


class OverlayChart(PlotextPlot):
    """A plotext chart that redraws only when given new lines."""

    def draw(self, title: str, lines: list[Line], xlabel: str = "") -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(title)
        plt.xlabel(xlabel)
        ys_all: list[float] = []
        for line in lines:
            xs, ys = _thin(line.xs, line.ys)
            if not xs:
                continue
            ys_all += ys
            if line.lo is not None and line.hi is not None and line.members > 1:
                for edge in (line.lo, line.hi):  # the band's edges, dimmer than the mean
                    ex, ey = _thin(line.xs, edge)
                    ys_all += ey
                    plt.plot(ex, ey, color=_dim(line.colour), marker="braille")
            plt.plot(xs, ys, color=line.colour, marker="braille")
            if len(xs) <= DENSE and len(lines) <= MARKED_LINES:  # real points only
                plt.scatter(xs, ys, color=line.colour, marker="●" if line.pinned else "•")
        xs_all = [x for line in lines for x in line.xs]
        if xs_all:
            values, labels = ticks(min(xs_all), max(xs_all), 5)
            if values:
                plt.xticks(values, labels)
        if ys_all:
            lo, hi = min(ys_all), max(ys_all)
            values, labels = ticks(lo, hi)
            if values:
                plt.yticks(values, labels)
            if hi - lo < 1e-3 * max(abs(hi), 1e-12) and hi != lo:
                plt.title(f"{title}  (Δ range {hi - lo:.2g})")
        else:
            plt.title(f"{title}: no points yet")
        self.refresh()
