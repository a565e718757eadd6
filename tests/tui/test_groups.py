"""The dashboard and groups: a group folds into one row that unfolds with enter, Slurm
states show in the status cell, Compare takes a group, and the Launch form's grid editor
counts and estimates the runs a grid makes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from textual.widgets import DataTable, Input, Static

from labdeck.backend.jsonio import write_json_atomic
from labdeck.backend.runs import STATE, create_run_dir
from labdeck.tui.screens.compare import CompareScreen
from labdeck.tui.screens.launch import LaunchScreen
from labdeck.tui.screens.runs import RunsScreen

SIZE = (120, 40)
ROOT = Path(__file__).resolve().parents[2]


def _column(table: DataTable, key: str) -> list[str]:
    return [str(getattr(c, "plain", c)) for c in table.get_column(key)]


def add_group(results: Path, gid: str = "g424242") -> list[str]:
    """Four members of a 2×2 counter grid: two completed, one on Slurm pending, one running."""
    ids = []
    axes = {"seed": [1, 2], "inner.scale": [1.0, 2.0]}
    points = [(s, c) for s in axes["seed"] for c in axes["inner.scale"]]
    for i, (seed, scale) in enumerate(points):
        run_id = f"20260101_0900{i:02d}_counter_fam_seed-{seed}_scale-{scale}_50000{i}"
        cfg = {
            "run_id": run_id,
            "kind": "counter",
            "title": f"fam_seed-{seed}",
            "params": {"seed": seed},
            "md5": "0" * 32,
            "group": {"id": gid, "title": "fam", "axes": axes, "index": i, "size": 4,
                      "coords": {"seed": seed, "inner.scale": scale}},
        }  # fmt: skip
        run = create_run_dir(results, run_id, json.dumps(cfg))
        state = {"status": "completed", "done": 3, "total": 3, "started": 1767258000.0 + i,
                 "ended": 1767258010.0 + i, "key_metric": {"name": "total", "value": 1.5 + i}}  # fmt: skip
        if i == 2:
            state = {"status": "queued", "slurm": {"job_id": "77_2", "state": "PENDING"}}
        if i == 3:
            state = {"status": "running", "pid": os.getpid(), "host": os.uname().nodename,
                     "heartbeat": time.time(), "done": 1, "total": 3, "started": time.time(),
                     "slurm": {"job_id": "77_3", "state": "RUNNING"}}  # fmt: skip
        write_json_atomic(run.path / STATE, state)
        ids.append(run_id)
    return ids


async def test_a_group_folds_into_one_row_that_enter_unfolds(fixture_dir, make_app):
    ids = add_group(Path("results"))
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, RunsScreen)
        table = screen.query_one("#runs", DataTable)
        assert table.row_count == 7  # six fixture runs + the folded group
        ids_col = _column(table, "id")
        row = ids_col.index("g424242")
        status = _column(table, "status")[row]
        assert "running" in status and "2✔" in status and "1○" in status  # icon counts
        assert (
            "best 2.5" in _column(table, "metric")[row]
            and "500001" in _column(table, "metric")[row]
        )
        table.move_cursor(row=row)
        await pilot.press("enter")
        await pilot.pause()
        assert table.row_count == 11
        statuses = _column(table, "status")
        # the scheduler's state where the column has room (the job id too when it fits)
        assert any("queued" in s and s.endswith("PENDING") for s in statuses)
        assert any("running" in s and s.endswith("RUNNING") for s in statuses)
        assert [i.strip() for i in _column(table, "id")[row + 1 : row + 5]] == [x[-6:] for x in ids]
        table.move_cursor(row=row)
        await pilot.press("c")  # compare takes the group: its members side by side
        await pilot.pause()
        assert isinstance(app.screen, CompareScreen)
        assert [r.id for r in app.screen.runs] == ids
        await pilot.press("escape")
        await pilot.pause()
        table.move_cursor(row=row)
        await pilot.press("enter")
        await pilot.pause()
        assert table.row_count == 7


async def test_launch_grid_editor_counts_and_estimates(fixture_dir, make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("l")
        await pilot.pause(0.5)
        screen = app.screen
        assert isinstance(screen, LaunchScreen)
        axes = screen.query_one("#grid-axes", Input)
        axes.value = "seed=1,2,3; learning_rate=0.001,0.003"
        await pilot.pause()
        assert "6 runs, one per combination (2 axes)" in str(
            screen.query_one("#grid-count", Static).render()
        )
        axes.value = "seed="
        await pilot.pause()
        assert "empty axis" in str(screen.query_one("#grid-count", Static).render())
        screen.select_option("kind:counter")  # a kind whose dry run needs no torch
        await pilot.pause(0.5)
        axes.value = "seed=1,2"
        await pilot.pause()
        await pilot.press("ctrl+t")
        for _ in range(100):
            await pilot.pause(0.1)
            if "units" in str(screen.query_one("#grid-count", Static).render()):
                break
        line = str(screen.query_one("#grid-count", Static).render())
        assert line.startswith("2 runs ·") and "units" in line, line


@pytest.mark.slurm
@pytest.mark.slow
async def test_dashboard_shows_the_slurm_state_of_a_real_job(tmp_path, monkeypatch):
    from labdeck.tui.app import LabdeckApp

    results = tmp_path / "results"
    monkeypatch.setenv("LABDECK_RESULTS", str(results))
    subprocess.run(
        [sys.executable, "-m", "labdeck.backend.cli", "run", "--kind", "counter", "--set",
         "units=150", "--set", "unit_seconds=0.1", "--launcher", "slurm", "--quiet"],
        check=True, cwd=ROOT, env=dict(os.environ),
    )  # fmt: skip
    (run_dir,) = [p for p in results.iterdir() if (p / "config.json").is_file()]
    app = LabdeckApp(results, poll_interval=0.3)
    async with app.run_test(size=SIZE) as pilot:
        table = app.screen.query_one("#runs", DataTable)

        async def wait_status(text: str) -> str:
            for _ in range(200):
                await pilot.pause(0.2)
                cells = _column(table, "status")
                if cells and text in cells[0]:
                    return cells[0]
            raise AssertionError(f"{text!r} never shown; last: {_column(table, 'status')}")

        job = await wait_status("RUNNING")
        job_id = job.split("slurm ")[1].split()[0]
        subprocess.run(["scancel", job_id], check=True)
        await wait_status("CANCELLED")
        assert json.loads((run_dir / STATE).read_text())["slurm"]["state"] == "CANCELLED"
