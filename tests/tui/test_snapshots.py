"""Snapshots of the four main screens over the fixed fixture folder (fixed clock and GPUs).

Update after an intended visual change with `pytest tests/tui --snapshot-update`.
"""

from __future__ import annotations

from pathlib import Path

from labdeck.backend.runs import Run

SIZE = (120, 40)


async def _settle(pilot, seconds: float = 0.6) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause(seconds)
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def test_runs_screen(fixture_dir, make_app, snap_compare):
    assert snap_compare(
        make_app(poll_interval=0, gpu_interval=0), terminal_size=SIZE, run_before=_settle
    )


def test_launch_screen(fixture_dir, make_app, snap_compare):
    async def run_before(pilot):
        await _settle(pilot, 0.2)
        await pilot.press("l")
        await _settle(pilot)

    assert snap_compare(
        make_app(poll_interval=0, gpu_interval=0), terminal_size=SIZE, run_before=run_before
    )


def test_monitor_screen(fixture_dir, make_app, snap_compare):
    async def run_before(pilot):
        await _settle(pilot, 0.2)
        pilot.app.open_monitor(Run(Path("results") / fixture_dir["original"]))
        await _settle(pilot, 1.2)

    app = make_app(poll_interval=0, gpu_interval=0, monitor_interval=0)
    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_compare_screen(fixture_dir, make_app, snap_compare):
    async def run_before(pilot):
        await _settle(pilot, 0.2)
        runs = [Run(Path("results") / fixture_dir[k]) for k in ("original", "repro")]
        pilot.app.open_compare(runs)
        await _settle(pilot, 1.0)

    assert snap_compare(
        make_app(poll_interval=0, gpu_interval=0), terminal_size=SIZE, run_before=run_before
    )
