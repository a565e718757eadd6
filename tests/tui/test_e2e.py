"""End to end: real runner subprocesses started and controlled from the dashboard.

Uses the `smoke` kind (the embedded model, a few tokens) so a run takes seconds
once the model cache exists.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from textual.widgets import DataTable

from labdeck.backend.runs import Run, list_runs
from labdeck.tui.screens.launch import LaunchScreen
from labdeck.tui.screens.monitor import MonitorScreen
from labdeck.tui.screens.runs import RunsScreen

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]
SIZE = (120, 40)


def _smoke_preset(folder: Path, prompts: int, tokens: int) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / "smoke-tiny.toml"
    lines = ", ".join(f'"Say the number {i}."' for i in range(prompts))
    path.write_text(
        'kind = "smoke"\ntitle = "smoke-tiny"\n[params]\n'
        f"prompts = [{lines}]\nmax_new_tokens = {tokens}\nstart_batch_size = 1\nmax_batch_size = 1\n"
    )
    return path


async def _wait(pilot, predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await pilot.pause(0.5)


def _table_status(app, run_id: str) -> str:
    runs = next(s for s in app.screen_stack if isinstance(s, RunsScreen))
    runs.poll()
    table = runs.query_one("#runs", DataTable)
    try:
        return str(table.get_cell(run_id, "status"))
    except Exception:
        return ""


@pytest.fixture
def live_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    results = tmp_path / "results"
    results.mkdir()
    monkeypatch.setenv("LABDECK_RESULTS", str(results))
    return results


async def test_launch_screen_starts_a_run_that_completes(live_dir, make_app):
    _smoke_preset(Path("presets"), prompts=1, tokens=2)
    app = make_app(clock=time.time)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("l")
        await _wait(
            pilot,
            lambda: isinstance(app.screen, LaunchScreen) and app.screen.source,
            10,
            "the form",
        )
        await pilot.press("ctrl+r")
        await _wait(
            pilot, lambda: isinstance(app.screen, MonitorScreen), 120, "the run to be launched"
        )
        run = app.screen.run_for_actions
        await _wait(pilot, lambda: run.status() == "completed", 240, "the run to complete")
        await _wait(pilot, lambda: app.screen.view.status == "completed", 10, "Monitor to show it")
        await pilot.press("escape")
        await _wait(pilot, lambda: "completed" in _table_status(app, run.id), 10, "the Runs table")
    assert Run(run.path).summary().get("final_metrics")


async def test_stop_resume_and_sigkill_from_the_dashboard(live_dir, make_app):
    preset = _smoke_preset(Path("presets"), prompts=6, tokens=8)
    from labdeck.tui import actions

    result = actions.launch([str(preset)], [], live_dir)
    assert result.ok, result.message
    run = Run(live_dir / actions.launched_run_id(result))
    app = make_app(clock=time.time)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.open_monitor(run)
        await _wait(pilot, lambda: run.state().get("records", 0) >= 1, 240, "the first record")
        await pilot.press("s")  # stop from Monitor
        await _wait(pilot, lambda: run.status() == "interrupted", 60, "interrupted")
        await _wait(
            pilot,
            lambda: "interrupted" in str(app.screen.query_one("#monitor-head").render()),
            10,
            "Monitor head",
        )
        await pilot.press("r")  # resume from Monitor
        await _wait(
            pilot, lambda: run.status() == "running" and run.state().get("pid"), 60, "resumed"
        )
        await _wait(pilot, lambda: run.state().get("records", 0) >= 2, 120, "progress after resume")
        os.kill(run.state()["pid"], signal.SIGKILL)
        await pilot.press("escape")
        await _wait(
            pilot, lambda: "crashed" in _table_status(app, run.id), 20, "crashed in the Runs table"
        )
        await pilot.press("r")  # resume the crashed run from the Runs screen (cursor is on it)
        await _wait(pilot, lambda: run.status() == "completed", 240, "completed after resume")
        await _wait(
            pilot, lambda: "completed" in _table_status(app, run.id), 10, "completed in the table"
        )
    assert [r.id for r in list_runs(live_dir)] == [run.id]
    records = [line for line in run.records_path.read_text().splitlines() if line.strip()]
    assert len(records) == 6  # none lost, none doubled across stop, resume and a SIGKILL
