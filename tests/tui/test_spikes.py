"""A long run's plot keeps its spikes: the skim of older bytes, the bounded series and
the thinning for the screen all keep each bucket's extremes."""

from __future__ import annotations

import json
import math

from fixture_runs import T0

from labdeck.backend.jsonio import dumps_line
from labdeck.backend.runs import create_run_dir
from labdeck.tui.data import RunView, Series
from labdeck.tui.plotting import curve_of
from labdeck.tui.widgets.series_plot import thin

STEPS = 60_000
SPIKE_STEP, SPIKE = 12_345, 9.5  # far before the tail
DIP_STEP, DIP = 31_007, -3.0


def _loss(i: int) -> float:
    return 1.0 / (1.0 + i / 1e4) + 0.01 * math.sin(i)


def _write_long_run(tmp_path):
    run = create_run_dir(tmp_path, "20260101_000000_kt_spike_000003", json.dumps({"kind": "kt"}))
    with open(run.events_path, "w", encoding="utf-8") as fh:
        fh.write(dumps_line({"t": T0, "seq": 0, "type": "phase", "name": "train", "total": STEPS}))
        fh.write("\n")
        seq = 1
        for i in range(STEPS):
            y = SPIKE if i == SPIKE_STEP else DIP if i == DIP_STEP else _loss(i)
            for ev in (
                {"type": "progress", "phase": "train", "done": i + 1, "total": STEPS},
                {"type": "metric", "name": "train_loss", "value": y, "step": i},
            ):
                fh.write(dumps_line({"t": T0 + i * 0.01, "seq": seq, **ev}) + "\n")
                seq += 1
    return run


def test_planted_spike_and_dip_reach_the_plotted_series(tmp_path):
    run = _write_long_run(tmp_path)
    view = RunView(run, tail_bytes=100_000, series_cap=300)
    view.poll()
    assert view.skimmed_bytes > 0  # the spike lies in the skimmed part
    curve, axis = curve_of(view, "train_loss", "train_loss", "native", 0.0)
    assert curve is not None and axis == "step"
    assert len(curve.xs) <= 300 + 4
    pts = set(zip(curve.xs, curve.ys, strict=True))
    assert (float(SPIKE_STEP), SPIKE) in pts and (float(DIP_STEP), DIP) in pts
    drawn = set(zip(*thin(curve.xs, curve.ys, limit=80), strict=True))
    assert (float(SPIKE_STEP), SPIKE) in drawn and (float(DIP_STEP), DIP) in drawn
    assert curve.xs[0] == 0.0 and curve.xs[-1] == float(STEPS - 1)
    assert view.phases["train"].done == STEPS


def test_series_keeps_each_stretch_extremes():
    s = Series(cap=50)
    ys = [float((i * 7919) % 1000) for i in range(10_000)]
    for i, y in enumerate(ys):
        s.add(float(i), y)
    xs, kept = s.points()
    assert len(xs) <= 52 and xs == sorted(xs)
    assert max(kept) == max(ys) and min(kept) == min(ys)
    # every stretch of `stride` points has its max among the kept points
    for b in range(0, len(ys), s.stride):
        assert max(ys[b : b + s.stride]) in kept
