"""Screens of the dashboard over the test fixture runs, as SVG and PNG (rsvg-convert).

    python scripts/screenshots.py docs/screenshots [launch monitor compare ...]

The fixture folder (tests/tui/fixture_runs.py) has a fixed clock and fixed GPU readings,
so the pictures change only when the screens do. PNG names match the README's.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "tui"))

import fixture_runs  # noqa: E402
from conftest import fixed_probe  # noqa: E402

from labdeck.backend.runs import Run  # noqa: E402
from labdeck.tui.app import LabdeckApp  # noqa: E402

SIZES = {(120, 40): "", (80, 24): "-80x24", (60, 20): "-60x20"}
Setup = Callable[[LabdeckApp, object, dict[str, str]], Awaitable[None]]


async def _launch(app, pilot, ids) -> None:
    await pilot.press("l")
    await pilot.pause(1.0)


async def _launch_side(app, pilot, ids) -> None:
    await _launch(app, pilot, ids)
    await pilot.press("ctrl+o")
    await pilot.pause(0.3)


async def _monitor(app, pilot, ids) -> None:
    app.open_monitor(Run(Path("results") / ids["original"]))
    await pilot.pause(1.5)


async def _monitor_kt(app, pilot, ids) -> None:
    app.open_monitor(Run(Path("results") / ids["interrupted"]))
    await pilot.pause(1.5)


async def _compare(app, pilot, ids) -> None:
    app.open_compare([Run(Path("results") / ids[k]) for k in ("original", "repro")])
    await pilot.pause(1.5)


SCREENS: dict[str, Setup] = {
    "launch": _launch,
    "launch-side": _launch_side,
    "monitor": _monitor,
    "monitor-kt": _monitor_kt,
    "compare": _compare,
}


async def shot(out: Path, name: str, size: tuple[int, int], ids: dict[str, str]) -> Path:
    app = LabdeckApp(
        Path("results"),
        gpu_probe=fixed_probe,
        clock=lambda: fixture_runs.T0 + 3600,
        presets_dirs=[Path("presets")],
        process_probe=lambda pid: (12.0, 300 * 1024**2),
        poll_interval=0,
        gpu_interval=0,
    )
    svg = out / f"{name}{SIZES[size]}.svg"
    async with app.run_test(size=size) as pilot:
        await pilot.pause(0.3)
        await SCREENS[name](app, pilot, ids)
        await app.workers.wait_for_complete()
        await pilot.pause(0.8)
        app.save_screenshot(svg.name, str(out))
    png = svg.with_suffix(".png")
    subprocess.run(["rsvg-convert", str(svg), "-o", str(png)], check=True)
    return png


def main() -> None:
    out = Path(sys.argv[1]).resolve()
    names = sys.argv[2:] or list(SCREENS)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="labdeck_shots_"))
    try:
        os.chdir(work)
        os.environ["TZ"] = "UTC"
        time.tzset()
        ids = fixture_runs.build(work / "results")
        shutil.copytree(ROOT / "presets", work / "presets")
        for name in names:
            for size in SIZES:
                if name == "launch-side" and size[0] >= 100:
                    continue  # the side panels are always shown at this width
                print(asyncio.run(shot(out, name, size, ids)))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
