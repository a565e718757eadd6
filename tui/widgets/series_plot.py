"""A plotext chart of one or more named series (Monitor's choice, Compare's overlay).

Drawing with plotext costs milliseconds per frame, so the widget redraws only
when asked with new data, and callers throttle how often they ask.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual_plotext import PlotextPlot

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


def thin(xs: list[float], ys: list[float], limit: int = MAX_PLOT_POINTS) -> tuple[list, list]:
    """At most `limit` points (the terminal has fewer columns anyway), every extreme kept."""
    return thin_extremes(xs, ys, limit)


class SeriesPlot(PlotextPlot):
    """Line plot of curves; an empty selection shows a hint instead of blank axes."""

    def draw(self, curves: list[Curve], title: str = "", xlabel: str = "") -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(title)
        plt.xlabel(xlabel)
        drawn = 0
        for c in curves:
            if not c.xs:
                continue
            xs, ys = thin(c.xs, c.ys)
            style: dict[str, str] = {}
            if c.color_slot is not None:
                style["color"] = COLORS[c.color_slot % len(COLORS)]
            if c.marker_slot is not None and len(xs) <= 40:
                marker = MARKERS[c.marker_slot % len(MARKERS)]
            else:
                marker = "braille" if len(xs) > 40 else "dot"
            plt.plot(xs, ys, label=c.label[:40], marker=marker, **style)
            drawn += 1
        if not drawn:
            plt.title(title or "no data for the chosen series yet")
        self.refresh()
