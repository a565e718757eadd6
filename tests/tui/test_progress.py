"""The Monitor shows what phase and progress events say, with an ETA: a long unit's
inner progress (batch 12/50) gives a pace before the unit ends, and the events' other
fields (an API job's status, failed requests) are shown as they are."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from fixture_runs import T0, FixedWriter
from textual.widgets import Static

from labdeck.backend.jsonio import write_json_atomic
from labdeck.backend.runs import Run, create_run_dir
from labdeck.tui.data import RunView
from labdeck.tui.screens.monitor import MonitorScreen
from labdeck.tui.widgets.panels import PhasePanel


def _live_run(results: Path) -> Run:
    run_id = "20260101_100000_kt_phases_246810"
    run = create_run_dir(results, run_id, json.dumps({"kind": "kt", "title": "phases"}))
    w = FixedWriter(run.events_path, T0)
    w.at(T0, "phase", name="prefit", total=40)
    for i in range(1, 11):  # an L-BFGS iteration every 2 s
        w.at(T0 + 2 * i, "progress", phase="prefit", done=i, total=40, loss=1 / i)
    w.at(T0 + 100, "phase", name="train", total=4)
    for b in range(1, 13):  # epoch 0, batch b of 50, a batch every second
        w.at(T0 + 100 + b, "progress", phase="train", done=0, total=4, batch=b, batches=50)
    state = {"status": "running", "pid": os.getpid(), "host": socket.gethostname()}
    write_json_atomic(run.path / "state.json", {**state, "started": T0})
    return run


def test_inner_progress_gives_a_pace_and_an_eta(tmp_path):
    view = RunView(_live_run(tmp_path))
    view.poll()
    prefit = view.phases["prefit"]
    assert prefit.rate == 0.5 and prefit.eta == 60.0
    train = view.phases["train"]
    assert train.sub == ("batch", 12.0, 50.0)
    assert abs(train.position - 0.24) < 1e-9 and train.rate is not None
    assert abs(train.eta - (4 - 0.24) / (0.24 / 12)) < 1e-6  # 188 s at 50 s an epoch
    assert train.extra_text() == "batch 12/50"
    assert prefit.extra_text() == "loss 0.1"


async def test_monitor_shows_phase_progress_with_eta(tmp_path, make_app, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = _live_run(tmp_path / "results")
    app = make_app(clock=lambda: T0 + 112)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.2)
        app.open_monitor(run)
        await pilot.pause(0.8)
        assert isinstance(app.screen, MonitorScreen)
        text = str(app.screen.query_one(PhasePanel).render())
        assert "train  0/4" in text and "ETA" in text and "batch 12/50" in text
        assert "prefit  10/40" in text
    app = make_app(clock=lambda: T0 + 112)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.2)
        app.open_monitor(run)
        await pilot.pause(0.8)
        compact = str(app.screen.query_one("#monitor-compact", Static).render())
        assert "train" in compact and "ETA" in compact and "batch 12/50" in compact
        await pilot.pause(0.3)
