"""The dashboard shows error text as it is: a last error holding `[/...]` or `[red]x[/`
neither stops a screen nor loses its brackets (runs table, Monitor head, log, toasts)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from textual.widgets import DataTable, Log
from textual.widgets._toast import Toast

from labdeck.backend.runs import Run, list_runs
from labdeck.tui import actions
from labdeck.tui.screens.monitor import MonitorScreen

NASTY = "[red]x[/ then [/bold] and [/]"


@pytest.fixture
def failed_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lab) -> Run:
    monkeypatch.chdir(tmp_path)
    results = tmp_path / "results"
    results.mkdir()
    monkeypatch.setenv("LABDECK_RESULTS", str(results))
    proc = lab(
        "run", "--kind", "counter", "--set", "units=3", "--set", "fail_at=1",
        "--set", f"note={json.dumps(NASTY)}", "--title", NASTY, "--results", str(results),
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    [run] = list_runs(results)
    assert NASTY in run.state()["last_error"]
    return run


async def test_error_text_with_markup_in_every_dashboard_place(
    failed_run: Run, make_app, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(run: Run, results: Path) -> actions.CliResult:
        return actions.CliResult([], 1, "", f"labdeck: error: {run.short_id}: {NASTY}")

    monkeypatch.setattr(actions, "resume", refused)
    app = make_app()
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await pilot.pause()
        table = app.screen.query_one("#runs", DataTable)
        row = " ".join(str(c) for c in table.get_row(failed_run.id))
        assert "[red]x[/ then [" in row  # the title, brackets kept (cut to its column)
        app.open_monitor(failed_run)
        await pilot.pause(0.5)
        assert isinstance(app.screen, MonitorScreen)
        head = str(app.screen.query_one("#monitor-head").render())
        assert f"planned failure at unit 1: {NASTY}"[:100] in head and NASTY in head
        log = "\n".join(str(line) for line in app.screen.query_one(Log).lines)
        assert NASTY in log
        app.run_verb("resume", failed_run)
        await app.workers.wait_for_complete()
        await pilot.pause(0.5)
        assert any(NASTY in n.message for n in app._notifications)
        await pilot.pause(0.5)
        toasts = [str(t.render()) for t in app.screen.query(Toast)]
        assert any(NASTY in t for t in toasts), toasts  # rendered with its brackets
