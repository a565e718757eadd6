"""One chart of the Overlay grid: several runs' curves of one metric on shared axes.

Lines come from `tui.overlay.lines_for` (colours fixed per run, the baseline last so
it is drawn on top); a folded seed set is its mean with the min and max as dotted
edges. Short series get a marker at each real point only; nothing is smoothed.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import ClassVar

from rich.text import Text
from textual_plotext import PlotextPlot
from textual_plotext.plot import Plot

from ..data.series import thin_extremes
from ..overlay import Line

DENSE = 40  # above this many points a line is drawn without point markers
MAX_POINTS = 400  # the terminal has fewer columns than this anyway
MARKED_LINES = 4  # beyond this many lines, point markers cost more than they tell


RENDERED_KEPT = 64  # charts kept drawn: a few pages of a grid, at the sizes seen


def _thin(xs: list[float], ys: list[float]) -> tuple[list[float], list[float]]:
    """Fewer points for the screen, each bucket's extremes kept (a spike stays visible)."""
    n = min(len(xs), len(ys))
    return thin_extremes(xs[:n], ys[:n], MAX_POINTS)


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
    """A plotext chart that redraws only when given new lines.

    plotext's build is pure Python (~10-20 ms a chart), so a grid page costs tens of
    milliseconds. What a chart drew is kept, keyed by its whole content, size and theme:
    a page turned back, or a refresh in which a chart's runs did not move, reuses it, and
    `prebuild` draws another page's chart off screen while the user reads this one. Any
    change of a point, colour or label is a different key."""

    _drawn: ClassVar[OrderedDict[tuple, Text]] = OrderedDict()  # shared by the grid's charts
    _content: tuple = ()

    def draw(self, title: str, lines: list[Line], xlabel: str = "") -> None:
        self._content = _content(title, lines, xlabel)
        _plot_lines(self.plt, title, lines, xlabel)
        self.refresh()

    def prebuild(self, title: str, lines: list[Line], xlabel: str = "") -> None:
        """Draw these lines off screen at this chart's size, so showing them is a lookup."""
        key = self._key(_content(title, lines, xlabel))
        if key not in self._drawn and self.size.area:
            plt = Plot()
            _plot_lines(plt, title, lines, xlabel)
            self._keep(key, self._build(plt))

    def render(self) -> Text:
        key = self._key(self._content)
        drawn = self._drawn.get(key)
        if drawn is None:
            drawn = self._build(self.plt)
            self._keep(key, drawn)
        else:
            self._drawn.move_to_end(key)
        return drawn

    def _key(self, content: tuple) -> tuple:
        return (content, self.size.width, self.size.height, self.app.theme)

    def _keep(self, key: tuple, drawn: Text) -> None:
        self._drawn[key] = drawn
        if len(self._drawn) > RENDERED_KEPT:
            self._drawn.popitem(last=False)

    def _build(self, plt: Plot) -> Text:
        """What PlotextPlot.render does, for any figure (this chart's or a scratch one)."""
        width, height = self.size.width, self.size.height
        plt.plotsize(width, height)
        plt._set_size(width, height)  # as PlotextPlot.render does (textual-plotext issue 5)
        plt.theme(self._get_plotext_theme_name(self.app.theme))
        return Text.from_ansi(plt.build())


def _plot_lines(plt: Plot, title: str, lines: list[Line], xlabel: str) -> None:
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


def _content(title: str, lines: list[Line], xlabel: str) -> tuple:
    return (title, xlabel, tuple(_fingerprint(line) for line in lines))


def _fingerprint(line: Line) -> tuple:
    """Everything of a line that reaches the screen."""
    return (
        line.key,
        line.label,
        str(line.colour),
        tuple(line.xs),
        tuple(line.ys),
        tuple(line.lo) if line.lo is not None else None,
        tuple(line.hi) if line.hi is not None else None,
        line.members,
        line.pinned,
    )
