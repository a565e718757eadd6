"""Matplotlib axis conventions shared by the cross-run reports and the kinds' own plots."""

from __future__ import annotations

from typing import Any


def label_x(ax: Any, label: str, fontsize: float = 8) -> None:
    """The x axis's label, and whole-number ticks when every point sits on a whole
    number (steps, epochs, checkpoints): a tick at step 0.5 names a point that cannot
    exist. Fractional axes (degradation levels) keep matplotlib's own ticks."""
    from matplotlib.ticker import MaxNLocator

    ax.set_xlabel(label, fontsize=fontsize)
    xs = [float(x) for line in ax.get_lines() for x in line.get_xdata()]
    if xs and all(x.is_integer() for x in xs):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
