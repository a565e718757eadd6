"""Snapshots of the workspace screens at 120x40 and 80x24 over the fixture folder with
four em variants and a kt grid of 3 seeds (fixed clock, GPUs and processes).

PNG copies for the docs: docs/screenshots/workspace-*.png (rsvg-convert of these SVGs).
Update after an intended visual change with `pytest tests/tui --snapshot-update`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fixture_runs import DEAD_PID
from test_workspace import gpu_snapshot

from labdeck.backend.gpuprocs import GpuProcess
from labdeck.backend.runs import Run

SIZES = pytest.mark.parametrize("size", [(120, 40), (80, 24)], ids=["120x40", "80x24"])


async def _settle(pilot, seconds: float = 0.5) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause(seconds)
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def fixed_snapshot(step: list[int] = [0]):  # noqa: B006  (the count of probes so far)
    """Processes with pids that cannot exist, so the picture is the same on every machine;
    utilisation that moves from probe to probe, so the history has a shape."""
    from dataclasses import replace

    step[0] += 1
    snap = gpu_snapshot()
    util = (20, 45, 70, 90, 95, 60, 85, 87)[step[0] % 8]
    snap.devices = [replace(snap.devices[0], util=float(util)), snap.devices[1]]
    snap.processes = [GpuProcess(0, DEAD_PID, 5 * 1024**3), GpuProcess(1, DEAD_PID + 1, 1024**3)]
    return snap


def _app(make_app):
    app = make_app(poll_interval=0, gpu_interval=0, monitor_interval=0)
    app.gpu_snapshot = fixed_snapshot
    return app


def _runs(ids: list[str]) -> list[Run]:
    return [Run(Path("results") / r) for r in ids]


@SIZES
def test_runs_table_with_parameter_columns(workspace_dir, make_app, snap_compare, size):
    async def run_before(pilot):
        await _settle(pilot, 0.2)
        await pilot.press("slash")
        pilot.app.screen.query_one("#search").value = "kind:em"
        await pilot.press("enter")
        await pilot.press("down", "down", "down", "b")  # pin em-demo as the baseline
        await _settle(pilot, 0.2)

    assert snap_compare(_app(make_app), terminal_size=size, run_before=run_before)


@SIZES
def test_overlay_em_variants(workspace_dir, make_app, snap_compare, size):
    async def run_before(pilot):
        await _settle(pilot, 0.2)
        em = _runs(workspace_dir["em"])
        pilot.app.open_overlay(em, em[0].id)
        await _settle(pilot, 0.8)

    assert snap_compare(_app(make_app), terminal_size=size, run_before=run_before)


@SIZES
def test_overlay_kt_seeds_folded(workspace_dir, make_app, snap_compare, size):
    async def run_before(pilot):
        await _settle(pilot, 0.2)
        pilot.app.open_overlay(_runs(workspace_dir["kt"]))
        await _settle(pilot, 0.8)
        await pilot.press("m")
        await _settle(pilot, 0.2)

    assert snap_compare(_app(make_app), terminal_size=size, run_before=run_before)


@SIZES
def test_records_of_an_em_run(workspace_dir, make_app, snap_compare, size):
    async def run_before(pilot):
        await _settle(pilot, 0.2)
        pilot.app.open_records(_runs(workspace_dir["em"])[3])
        await _settle(pilot, 0.5)
        await pilot.press("down")
        await _settle(pilot, 0.1)

    assert snap_compare(_app(make_app), terminal_size=size, run_before=run_before)


@SIZES
def test_gpu_view(workspace_dir, make_app, snap_compare, size):
    async def run_before(pilot):
        await _settle(pilot, 0.2)
        fixed_snapshot.__defaults__[0][0] = 0
        pilot.app.open_gpu(None)  # every process (this run's own: test_workspace.py)
        await _settle(pilot, 0.2)
        for _ in range(7):  # a history of eight probes
            pilot.app.screen._poller()
            await _settle(pilot, 0.05)

    assert snap_compare(_app(make_app), terminal_size=size, run_before=run_before)


@SIZES
def test_env_diff(workspace_dir, make_app, snap_compare, size):
    async def run_before(pilot):
        await _settle(pilot, 0.2)
        pilot.app.open_env_diff(_runs(workspace_dir["em"])[:2])
        await _settle(pilot, 0.2)

    assert snap_compare(_app(make_app), terminal_size=size, run_before=run_before)
