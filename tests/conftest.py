"""Fixtures shared by every test folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # shared test modules such as tiny_models
# The protocol-test kind `counter` lives with the tests; it is found the way a lab's own
# kinds are (LABDECK_KIND_PATH), which this also exercises.
os.environ["LABDECK_KIND_PATH"] = str(ROOT / "tests" / "core" / "kinds")


@pytest.fixture
def results_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh results/ folder that every labdeck call in the test (and its subprocesses) uses."""
    d = tmp_path / "results"
    d.mkdir()
    monkeypatch.setenv("LABDECK_RESULTS", str(d))
    return d


def labdeck(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300, check: bool = False
) -> subprocess.CompletedProcess:
    """Run the real command line in a subprocess, as a user would."""
    proc = subprocess.run(
        [sys.executable, "-m", "labdeck.backend.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        check=False,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"labdeck {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


@pytest.fixture
def lab():
    return labdeck
