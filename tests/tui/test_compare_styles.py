"""Compare of several runs draws the same picture as `labdeck plot RUN RUN ...`: curves
styled by the parameters that differ (seed 000's four curves: reflection by colour,
persona by marker), labelled by their values."""

from __future__ import annotations

import json
from pathlib import Path

from fixture_runs import config

from labdeck.backend.events import EventWriter
from labdeck.backend.jsonio import write_json_atomic
from labdeck.backend.runs import Run
from labdeck.tui.screens.compare import CompareScreen
from labdeck.tui.widgets.series_plot import SeriesPlot

VARIANTS = [("baseline", False), ("baseline", True), ("goodness", False), ("goodness", True)]


def _em_runs(results: Path) -> list[Run]:
    runs = []
    for i, (persona, reflection) in enumerate(VARIANTS):
        run_id = f"20260101_090000_em_v{i}_{100000 + i}"
        path = results / run_id
        (path / "artifacts").mkdir(parents=True)
        params = {"persona": persona, "with_reflection": reflection, "seed": 0}
        (path / "config.json").write_text(config("em", f"v{i}", run_id, params))
        write_json_atomic(path / "state.json", {"status": "completed", "started": 1.0})
        w = EventWriter(path / "events.jsonl")
        for step in (0, 25, 50):
            w.emit("metric", name="misaligned_rate", value=0.1 * i + step / 500, step=step)
        w.close()
        runs.append(Run(path))
    return runs


async def test_four_variants_are_styled_by_reflection_and_persona(
    fixture_dir, make_app, monkeypatch
) -> None:
    drawn: list = []
    monkeypatch.setattr(SeriesPlot, "draw", lambda self, curves, *a, **k: drawn.append(curves))
    runs = _em_runs(Path("results"))
    app = make_app(poll_interval=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.2)
        app.open_compare(runs)
        await pilot.pause(0.8)
        assert isinstance(app.screen, CompareScreen)
    curves = next(c for c in reversed(drawn) if len(c) == 4)
    slots = [(c.color_slot, c.marker_slot) for c in curves]
    # STYLE_KEYS of em: with_reflection picks the colour, persona the marker
    assert slots == [(0, 0), (1, 0), (0, 1), (1, 1)]
    assert "with_reflection=True" in curves[1].label and "persona=goodness" in curves[2].label
    assert json.loads((runs[0].path / "config.json").read_text())["kind"] == "em"
