"""Honest plots: round ticks with few digits and a Δ range when the span is tiny, markers
on real points only, no smoothing of sweeps or short series (and said in the title),
only the x axes a series has, series names grouped as a tree and never cut mid-name."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from labdeck.tui.data import RunView
from labdeck.tui.plotting import (
    abbreviate,
    curve_of,
    cut_left,
    series_tree,
    smoothing_note,
    x_modes,
)
from labdeck.tui.widgets.series_plot import Curve, SeriesPlot, nice_ticks, range_note

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _render(curves: list[Curve], title: str = "", xlabel: str = "") -> list[str]:
    plot = SeriesPlot()
    plot.refresh = lambda *a, **k: None  # drawn off screen
    plot.draw(curves, title, xlabel)
    plot.plt.plotsize(80, 20)
    return ANSI.sub("", plot.plt.build()).splitlines()


def test_flat_auc_gets_round_ticks_and_a_delta_range():
    ticks, labels = nice_ticks(0.681318, 0.681550)
    assert 2 <= len(ticks) <= 5 and labels == ["0.6814", "0.6815"]
    flat = Curve("val_auc", [1, 2, 3, 4, 5], [0.681318, 0.68155, 0.68132, 0.68154, 0.6814])
    note = range_note([flat])
    assert note.startswith("Δ range 2.3e-04")
    lines = _render([flat], "val_auc")
    assert "Δ range" in lines[0]
    assert not any(re.search(r"0\.\d{5,}┤", ln) for ln in lines), "six-decimal ticks"
    assert range_note([Curve("loss", [1, 2], [0.5, 1.5])]) == ""


def test_markers_sit_on_the_real_points_only():
    sweep = Curve("perplexity[attention]", [0.0, 0.1, 0.2, 0.3], [0.538, 0.6, 0.65, 0.704])
    lines = _render([sweep], "sweep", "level")
    legend = next(ln for ln in lines if "●● perplexity[attention]" in ln)  # whole, not cut
    assert "…" not in legend
    # the legend's two, then one on each of the 4 levels: none filled in between
    assert sum(ln.count("●") for ln in lines) == 2 + 4


def test_no_smoothing_of_sweeps_or_short_series(fixture_dir):
    view = RunView(Path("results") / fixture_dir["original"])  # a degradation sweep
    view.poll()
    name = next(n for n in view.series_names() if view.axis(n) == "level")
    raw, _ = curve_of(view, name, name, "native", 0.0)
    smoothed, _ = curve_of(view, name, name, "native", 0.9)
    assert smoothed.ys == raw.ys and not smoothed.smoothed
    assert "not applied" in smoothing_note([smoothed], 0.9)
    assert x_modes(view, [name]) == ["native"]  # a sweep has its levels only
    kt = RunView(Path("results") / fixture_dir["interrupted"])
    kt.poll()
    long, _ = curve_of(kt, "train_loss", "train_loss", "native", 0.9)
    assert long.smoothed and smoothing_note([long], 0.9) == "smoothed 0.9"
    assert x_modes(kt, ["train_loss"]) == ["native", "epoch", "wall"]
    assert x_modes(kt, ["val_auc"]) == ["native", "wall"]  # already per epoch


def test_series_tree_groups_by_prefix_and_cuts_only_at_parts():
    names = [
        "train_loss",
        "train_loss.bce",
        "train_loss.alignment_corr_gain",
        "perplexity[attention]",
        "trajectory:loss_shares.lag",
        "trajectory:loss_shares.alignment",
    ]
    rows = [(r.depth, r.label, r.name) for r in series_tree(names)]
    assert rows[:3] == [
        (0, "train_loss", "train_loss"),
        (1, "bce", "train_loss.bce"),
        (1, "alignment_corr_gain", "train_loss.alignment_corr_gain"),
    ]
    assert (0, "perplexity", None) in rows and (1, "attention", "perplexity[attention]") in rows
    assert rows[-4:] == [
        (0, "trajectory", None),
        (1, "loss_shares", None),
        (2, "lag", "trajectory:loss_shares.lag"),
        (2, "alignment", "trajectory:loss_shares.alignment"),
    ]
    assert cut_left("trajectory:loss_shares.lag", 20) == "…loss_shares.lag"
    assert cut_left("train_loss.alignment_corr_gain", 22) == "…alignment_corr_gain"
    for name, label in abbreviate(names, 16).items():
        tail = label.removeprefix("…")
        assert label == name or (name.endswith(tail) and name[-len(tail) - 1] in ".:[_")


@pytest.mark.parametrize("size", [(120, 40), (80, 24)])
async def test_monitor_x_offers_only_the_series_axes(fixture_dir, make_app, size):
    from labdeck.backend.runs import Run
    from labdeck.tui.screens.monitor import MonitorScreen

    app = make_app(gpu_interval=0)
    async with app.run_test(size=size) as pilot:
        await pilot.pause(0.2)
        app.open_monitor(Run(Path("results") / fixture_dir["original"]))  # a sweep
        await pilot.pause(0.8)
        screen = app.screen
        assert isinstance(screen, MonitorScreen)
        await pilot.press("x")
        assert screen.x_mode == "native"
        lst = screen.query_one("#series-list")
        prompts = [str(lst.get_option_at_index(i).prompt) for i in range(lst.option_count)]
        assert "perplexity" in prompts[0] and any(p.endswith("attn") for p in prompts)
        assert not any("[" in p for p in prompts)  # grouped, not perplexity[attn]
        await pilot.press("escape")
        await pilot.pause(0.2)
        app.open_monitor(Run(Path("results") / fixture_dir["interrupted"]))  # kt
        await pilot.pause(0.8)
        screen = app.screen
        screen._select(["train_loss"])
        await pilot.press("x")
        assert screen.x_mode == "epoch"
        await pilot.press("x")
        assert screen.x_mode == "wall"
        await pilot.pause(0.3)
