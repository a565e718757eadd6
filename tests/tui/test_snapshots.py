"""Snapshots of the main screens at 120x40, 80x24 and 60x20 over the fixed fixture folder
(fixed clock and GPUs): columns by priority, folded panels and the footer by priority.

Update after an intended visual change with `pytest tests/tui --snapshot-update`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from labdeck.backend.runs import Run

SIZES = pytest.mark.parametrize(
    "size", [(120, 40), (80, 24), (60, 20)], ids=["120x40", "80x24", "60x20"]
)


async def _settle(pilot, seconds: float = 0.6) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause(seconds)
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


@SIZES
def test_runs_screen(fixture_dir, make_app, snap_compare, size):
    assert snap_compare(
        make_app(poll_interval=0, gpu_interval=0), terminal_size=size, run_before=_settle
    )


@SIZES
def test_launch_screen(fixture_dir, make_app, snap_compare, size):
    async def run_before(pilot):
        await _settle(pilot, 0.2)
        await pilot.press("l")
        await _settle(pilot)

    assert snap_compare(
        make_app(poll_interval=0, gpu_interval=0), terminal_size=size, run_before=run_before
    )


@SIZES
def test_monitor_screen(fixture_dir, make_app, snap_compare, size):
    async def run_before(pilot):
        await _settle(pilot, 0.2)
        pilot.app.open_monitor(Run(Path("results") / fixture_dir["original"]))
        await _settle(pilot, 0.6)
        await pilot.app.workers.wait_for_complete()  # the history read, however loaded the machine
        await _settle(pilot, 0.6)

    app = make_app(poll_interval=0, gpu_interval=0, monitor_interval=0)
    assert snap_compare(app, terminal_size=size, run_before=run_before)


@SIZES
def test_compare_screen(fixture_dir, make_app, snap_compare, size):
    async def run_before(pilot):
        await _settle(pilot, 0.2)
        runs = [Run(Path("results") / fixture_dir[k]) for k in ("original", "repro")]
        pilot.app.open_compare(runs)
        await _settle(pilot, 1.0)

    assert snap_compare(
        make_app(poll_interval=0, gpu_interval=0), terminal_size=size, run_before=run_before
    )
