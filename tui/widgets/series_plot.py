"""A plotext chart of one or more named series (Monitor's choice, Compare's overlay).

Drawing with plotext costs milliseconds per frame, so the widget redraws only
when asked with new data, and callers throttle how often they ask.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual_plotext import PlotextPlot

MAX_PLOT_POINTS = 600


@dataclass
class Curve:
    label: str
    xs: list[float]
    ys: list[float]


def thin(xs: list[float], ys: list[float], limit: int = MAX_PLOT_POINTS) -> tuple[list, list]:
    """At most `limit` points (the terminal has fewer columns anyway), keeping the last."""
    if len(xs) <= limit:
        return xs, ys
    step = len(xs) / limit
    idx = [int(i * step) for i in range(limit - 1)] + [len(xs) - 1]
    return [xs[i] for i in idx], [ys[i] for i in idx]


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
            marker = "braille" if len(xs) > 40 else "dot"
            plt.plot(xs, ys, label=c.label[:40], marker=marker)
            drawn += 1
        if not drawn:
            plt.title(title or "no data for the chosen series yet")
        self.refresh()
