"""Whole-number x ticks for step axes, matplotlib's own for fractional ones."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from labdeck.backend.axes import label_x


def ticks_after(xs: list[float]) -> list[float]:
    fig, ax = plt.subplots()
    ax.plot(xs, [1.0] * len(xs))
    label_x(ax, "x")
    fig.canvas.draw()
    lo, hi = ax.get_xlim()
    ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
    plt.close(fig)
    return ticks


def test_checkpoint_steps_get_whole_number_ticks() -> None:
    ticks = ticks_after([0, 2, 4])  # matplotlib alone ticks this at 0, 0.5, …, 4
    assert ticks and all(float(t).is_integer() for t in ticks)


def test_degradation_levels_keep_fractional_ticks() -> None:
    ticks = ticks_after([0.0, 0.1, 0.3])
    assert any(not float(t).is_integer() for t in ticks)
