"""Shared fixtures for the dashboard tests: a fixed results folder and an app factory."""

from __future__ import annotations

import asyncio
import inspect
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import fixture_runs

from labdeck.backend.gpu import DeviceMemory
from labdeck.tui.app import LabdeckApp

GIB = 1024**3


def fixed_probe() -> tuple[str, list[DeviceMemory]]:
    """Two GPUs with fixed readings, so snapshots do not depend on this machine."""
    return "NVML: 2 NVIDIA GPU(s) (NVIDIA L4)", [
        DeviceMemory("cuda:0", "NVIDIA L4", 17 * GIB, 24 * GIB, 87.0, 66, "nvml"),
        DeviceMemory("cuda:1", "NVIDIA L4", 2 * GIB, 24 * GIB, 3.0, 41, "nvml"),
    ]


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run `async def` tests (Pilot) on a fresh event loop without an extra plugin."""
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    args = {k: pyfuncitem.funcargs[k] for k in pyfuncitem._fixtureinfo.argnames}
    asyncio.run(pyfuncitem.obj(**args))
    return True


@pytest.fixture
def fixture_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """cwd = a folder holding results/ (the fixture runs) and presets/ (good and broken)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    results = tmp_path / "results"
    monkeypatch.setenv("LABDECK_RESULTS", str(results))
    ids = fixture_runs.build(results)
    presets = tmp_path / "presets"
    presets.mkdir()
    (presets / "kt-small.toml").write_text(
        'kind = "kt"\ntitle = "kt-small"\ndescription = "a small synthetic kt run"\n'
        "[params]\nepochs = 3\nd_model = 64\nsim_num_students = 200\n"
    )
    (presets / "broken.toml").write_text('kind = "kt"\ntitle = "oops\n')
    return ids


@pytest.fixture
def make_app() -> Callable[..., LabdeckApp]:
    def factory(**kw) -> LabdeckApp:
        kw.setdefault("gpu_probe", fixed_probe)
        kw.setdefault("clock", lambda: fixture_runs.T0 + 3600)
        kw.setdefault("presets_dirs", [Path("presets")])
        # the running fixture's "runner" is the test process: fixed readings for snapshots
        kw.setdefault("process_probe", lambda pid: (12.0, 300 * 1024**2))
        return LabdeckApp(Path("results"), **kw)

    return factory


@pytest.fixture(autouse=True)
def _restore_tz():
    yield
    os.environ.pop("TZ", None)
    time.tzset()


def copy_tree(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst)


@pytest.fixture
def workspace_dir(fixture_dir: dict[str, str]) -> dict:
    """The fixture folder plus four em variants and a kt grid of 3 seeds."""
    return {**fixture_dir, **fixture_runs.build_workspace(Path("results"))}
