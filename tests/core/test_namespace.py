"""labdeck installs as one import package, so users' own `backend/` or `tui/` never shadow it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from labdeck.backend import envinfo


def test_detached_runner_started_from_a_folder_with_a_decoy_backend_package(
    results_dir: Path, tmp_path: Path
) -> None:
    project = tmp_path / "webapp"
    for name in ("backend", "tui"):
        (project / name).mkdir(parents=True)
        (project / name / "__init__.py").write_text('raise SystemExit("decoy package imported")\n')
    env = {**os.environ, "LABDECK_RESULTS": str(results_dir)}
    cmd = [sys.executable, "-m", "labdeck.backend.cli", "run", "--kind", "counter"]
    started = subprocess.run(
        [*cmd, "--set", "units=3", "--set", "unit_seconds=0", "--detach"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert started.returncode == 0, started.stderr
    (run_dir,) = [p for p in results_dir.iterdir() if not p.name.startswith(".")]
    deadline = time.time() + 120
    state: dict = {}
    while time.time() < deadline:
        state = json.loads((run_dir / "state.json").read_text())
        if state.get("status") in ("completed", "failed"):
            break
        time.sleep(0.1)
    log = (run_dir / "runner.log").read_text()
    assert state.get("status") == "completed", log
    assert "decoy" not in log


def test_environment_records_labdecks_own_source_not_the_enclosing_repository(
    tmp_path: Path,
) -> None:
    env = envinfo.environment()
    assert env["labdeck"]
    source = env["labdeck_source"]
    # Run from this checkout (an editable install): its commit and a dirty flag.
    assert source is None or (len(source["commit"]) == 40 and isinstance(source["dirty"], bool))
    # An installed copy inside some other git repository (site-packages inside a
    # project's virtualenv) reports no commit: that repository is not labdeck.
    other = tmp_path / "project"
    installed = other / ".venv" / "site-packages" / "labdeck"
    (installed / "backend").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(other)], check=True)
    (other / "pyproject.toml").write_text('[project]\nname = "labdeck"\n')
    assert envinfo.source_checkout(installed) is None
    assert envinfo.source_checkout(other) == other.resolve()
