"""Fixtures shared by every test folder."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # shared test modules such as tiny_models
# The protocol-test kind `counter` lives with the tests; it is found the way a lab's own
# kinds are (LABDECK_KIND_PATH), which this also exercises.
os.environ["LABDECK_KIND_PATH"] = str(ROOT / "tests" / "core" / "kinds")
# The machine's run slots (launchers/local.py) are per user; tests keep their own, so a
# run of the suite neither waits for nor holds up anything else on the machine.
os.environ["LABDECK_SLOTS_DIR"] = tempfile.mkdtemp(prefix="labdeck-test-slots-")


@pytest.fixture
def results_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh results/ folder that every labdeck call in the test (and its subprocesses) uses."""
    d = tmp_path / "results"
    d.mkdir()
    monkeypatch.setenv("LABDECK_RESULTS", str(d))
    monkeypatch.setenv("LABDECK_SLOTS_DIR", str(tmp_path / "slots"))
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


def _slurm_unavailable() -> str | None:
    """Why the `slurm` tests cannot run here (None: a cluster answers)."""
    import shutil

    if not shutil.which("sbatch"):
        return "no Slurm here (run scripts/local-slurm.sh as root to bring one up)"
    try:
        out = subprocess.run(
            ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"sinfo failed: {exc}"
    if not any(s.strip() in ("idle", "mixed", "allocated") for s in out.stdout.splitlines()):
        return f"Slurm has no usable node (sinfo: {(out.stdout + out.stderr).strip()[:120]!r})"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not any(item.get_closest_marker("slurm") for item in items):
        return
    reason = _slurm_unavailable()
    if reason:
        skip = pytest.mark.skip(reason=f"slurm: {reason}")
        for item in items:
            if item.get_closest_marker("slurm"):
                item.add_marker(skip)


@pytest.fixture(autouse=True)
def _fresh_api_pacing() -> None:
    """API pacing is shared per endpoint and key within a process (one run); a test is one
    run, and a loopback port reused by a later test must not inherit an earlier pacing."""
    from labdeck.backend.providers.ratelimit import reset_shared_limiters

    reset_shared_limiters()
