"""Starting runner processes that outlive whoever started them (the dashboard, a shell).

Local subprocesses for now; a cluster launcher (sbatch writing to a shared
filesystem) only needs to start the same `labdeck resume RUN` command elsewhere,
because everything a watcher needs is in the run directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .runs import LOG


def cli_argv(*args: str) -> list[str]:
    """The labdeck command line for this interpreter (works without the console script on PATH)."""
    return [sys.executable, "-m", "labdeck.backend.cli", *args]


def launch_detached(argv: list[str], results: Path, log_path: Path | None = None) -> int:
    """Run `labdeck <argv>` in a new session (immune to the parent's exit and Ctrl-C).

    Output goes to the run's runner.log (or /dev/null) so an early crash, such as an
    import error, is still visible to whoever opens the run.
    """
    env = dict(os.environ, LABDECK_RESULTS=str(results), PYTHONUNBUFFERED="1")
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    try:
        proc = subprocess.Popen(
            cli_argv(*argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            env=env,
            cwd=os.getcwd(),
        )
    finally:
        if log_path:
            out.close()
    return proc.pid


def launch_run_detached(run_dir: Path) -> int:
    """Execute an already created run directory in the background."""
    return launch_detached(["resume", str(run_dir), "--quiet"], run_dir.parent, run_dir / LOG)
