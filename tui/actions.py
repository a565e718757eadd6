"""Every action that changes a run goes through the `labdeck` command line in a subprocess.

The dashboard never runs model code and never writes a run's files itself (except
deleting a whole directory and the researcher's own tags and note, notes.json), so what it does is exactly what a user could type,
and runs it starts outlive it (`--detach` starts the runner in its own session).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from labdeck.backend.launch import cli_argv
from labdeck.backend.runs import Run

CLI_TIMEOUT = 120.0


@dataclass
class CliResult:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def message(self) -> str:
        """The one line worth showing: the CLI's error line, or its last output line."""
        text = (self.stderr if not self.ok else self.stdout or self.stderr).strip()
        lines = [ln for ln in text.splitlines() if ln.strip()]
        if not lines:
            return f"exit status {self.returncode}" if not self.ok else "done"
        errors = [ln for ln in lines if "error" in ln.lower()]
        return (errors[-1] if errors and not self.ok else lines[-1]).removeprefix("labdeck: ")


def run_cli(args: list[str], results: Path, timeout: float = CLI_TIMEOUT) -> CliResult:
    """Run `labdeck <args>` against `results` and wait for it (blocking: call from a worker)."""
    argv = cli_argv(*args)
    env = dict(os.environ, LABDECK_RESULTS=str(results), NO_COLOR="1", COLUMNS="200")
    try:
        proc = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return CliResult(argv, 124, "", f"labdeck {' '.join(args)}: no answer in {timeout:.0f}s")
    return CliResult(argv, proc.returncode, proc.stdout, proc.stderr)


def launch(
    source: list[str],
    sets: list[str],
    results: Path,
    title: str | None = None,
    grid: list[str] | None = None,
) -> CliResult:
    """`source` is `[PRESET]` or `["--kind", KIND]`; `grid` axes make it a group."""
    args = ["run", *source, "--detach", "--quiet"]
    for item in sets:
        args += ["--set", item]
    for axis in grid or []:
        args += ["--grid", axis]
    if title:
        args += ["--title", title]
    return run_cli(args, results)


def launched_run_id(result: CliResult) -> str | None:
    """`run --detach` prints the new run id (or, for a grid, the group id) on stdout."""
    lines = result.stdout.strip().splitlines()
    return lines[0].strip() if result.ok and lines else None


def dry_run(
    source: list[str], sets: list[str], results: Path, grid: list[str] | None = None
) -> CliResult:
    args = ["run", *source, "--dry-run", "--json"]
    for item in sets:
        args += ["--set", item]
    for axis in grid or []:
        args += ["--grid", axis]
    return run_cli(args, results)


def stop(run: Run, results: Path) -> CliResult:
    return run_cli(["stop", run.id, "--wait", "10"], results)


def resume(run: Run, results: Path) -> CliResult:
    return run_cli(["resume", run.id, "--detach"], results)


def kill(run: Run, results: Path) -> CliResult:
    return run_cli(["kill", run.id], results)


def reproduce(run: Run, results: Path) -> CliResult:
    return run_cli(["reproduce", run.id, "--detach"], results)


def delete(run: Run) -> str:
    """Remove a run directory; refuses a live run (stop it first) so a runner never
    finds its folder gone under it."""
    status = run.status()
    if status in ("running", "queued") and run.state().get("pid"):
        return f"{run.id} is {status}; stop it before deleting"
    shutil.rmtree(run.path)
    return f"deleted {run.id}"
