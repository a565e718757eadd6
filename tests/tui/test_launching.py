"""A launch from the form never vanishes: its stage shows until the run directory exists
(then the Monitor opens), a failing launcher process is reported in the dashboard, and
a second ctrl+r while one is pending launches nothing.

The `labdeck run` subprocesses are replaced by a gate the test opens, so the pending
window is as long as the test wants; test_e2e.py launches real runs.
"""

from __future__ import annotations

import threading
from pathlib import Path

import fixture_runs
import pytest
from textual.widgets import Static

from labdeck.tui import actions
from labdeck.tui.screens.launch import LaunchScreen
from labdeck.tui.screens.monitor import MonitorScreen
from labdeck.tui.screens.runs import RunsScreen

NEW_ID = "20260101_120000_kt_kt-small_424242"


class GatedCli:
    """Answers `labdeck run …` once `gate` is set; `--detach` creates the run directory
    (as the real CLI does before printing the id) unless `fail` is set."""

    def __init__(self, fail: str | None = None) -> None:
        self.gate = threading.Event()
        self.calls: list[list[str]] = []
        self.fail = fail

    def __call__(self, args, results, timeout=actions.CLI_TIMEOUT):
        self.calls.append(list(args))
        assert self.gate.wait(30), "the test never opened the gate"
        if "--dry-run" in args:
            return actions.CliResult(args, 0, '{"units": 3}\n', "")
        if self.fail:
            return actions.CliResult(args, 1, "", f"labdeck: error: {self.fail}")
        fixture_runs.kt_run(Path(results), NEW_ID, "running", 1, None, fixture_runs.T0)
        return actions.CliResult(args, 0, NEW_ID + "\n", "")

    def launches(self) -> int:
        return sum("--detach" in c for c in self.calls)


def _text(widget: Static) -> str:
    return str(widget.render())


async def _open_form(pilot) -> LaunchScreen:
    app = pilot.app
    app.open_launch()
    for _ in range(100):
        await pilot.pause(0.05)
        if isinstance(app.screen, LaunchScreen) and app.screen._valid:
            return app.screen
    raise AssertionError("the launch form did not load a preset")


async def _until(pilot, cond, what: str, seconds: float = 10) -> None:
    for _ in range(int(seconds / 0.05)):
        if cond():
            return
        await pilot.pause(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize("size", [(120, 40), (80, 24)])
async def test_pending_launch_shows_its_stage_launches_once_and_opens(
    fixture_dir, make_app, monkeypatch, size
):
    cli = GatedCli()
    monkeypatch.setattr(actions, "run_cli", cli)
    app = make_app(gpu_interval=0)
    async with app.run_test(size=size) as pilot:
        form = await _open_form(pilot)
        await pilot.press("ctrl+r")
        await pilot.pause(0.6)
        status = form.query_one("#launch-status", Static)
        assert app.launcher.pending is not None, [n.message for n in app._notifications]
        assert status.display and "launching kt-small: checking" in _text(status)
        await pilot.press("ctrl+r")  # pressed again while pending
        await pilot.pause(0.2)
        assert app.launcher.pending is not None
        cli.gate.set()
        await _until(pilot, lambda: isinstance(app.screen, MonitorScreen), "the Monitor")
        assert app.screen.run_for_actions.id == NEW_ID
        assert cli.launches() == 1, cli.calls
        assert app.launcher.pending is None
        await pilot.pause(0.5)  # let the Monitor finish mounting before the app closes


async def test_failing_launcher_is_reported_on_the_form(fixture_dir, make_app, monkeypatch):
    cli = GatedCli(fail="results/: permission denied")
    monkeypatch.setattr(actions, "run_cli", cli)
    app = make_app(gpu_interval=0)
    async with app.run_test(size=(120, 40)) as pilot:
        form = await _open_form(pilot)
        await pilot.press("ctrl+r")
        cli.gate.set()
        await _until(pilot, lambda: app.launcher.last is not None, "the launch to end")
        await pilot.pause(0.2)
        assert isinstance(app.screen, LaunchScreen)
        assert "launch failed: error: results/: permission denied" in _text(
            form.query_one("#launch-error", Static)
        )
        assert not form.query_one("#launch-status", Static).display
        assert any("permission denied" in n.message for n in app._notifications)


async def test_leaving_the_form_keeps_the_launch(fixture_dir, make_app, monkeypatch):
    cli = GatedCli()
    monkeypatch.setattr(actions, "run_cli", cli)
    app = make_app(gpu_interval=0)
    async with app.run_test(size=(80, 24)) as pilot:
        await _open_form(pilot)
        await pilot.press("ctrl+r")
        await pilot.pause(0.2)
        await pilot.press("escape")
        await _until(pilot, lambda: isinstance(app.screen, RunsScreen), "the Runs table")
        assert any("continues" in n.message for n in app._notifications)
        cli.gate.set()
        await _until(pilot, lambda: isinstance(app.screen, MonitorScreen), "the Monitor")
        assert app.screen.run_for_actions.id == NEW_ID and cli.launches() == 1
        await pilot.pause(0.5)
