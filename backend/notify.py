"""`notify_command`: a command of the user's that the runner itself runs when a run ends.

It runs from the runner, not from the dashboard, so it works for a run on a cluster node
nobody is watching (a `curl` to a chat webhook, `notify-send`, `mail`). The command comes
from the run's launcher options (`[launcher] notify_command = "..."` or `--launch
notify_command=...`), else from the user's environment (`LABDECK_NOTIFY_COMMAND`).

The command line may name `{run_id}`, `{short_id}`, `{status}` and `{run_dir}` (each
shell-quoted); the same values are in its environment as LABDECK_RUN_ID,
LABDECK_SHORT_ID, LABDECK_STATUS, LABDECK_RUN_DIR and LABDECK_ERROR. It never changes
the run's status: a failing or hanging command is reported in runner.log and killed
after `TIMEOUT_S`.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
from typing import Any

from .runs import Run

ENV = "LABDECK_NOTIFY_COMMAND"
TIMEOUT_S = 30.0


def notify_command(config: dict[str, Any]) -> str | None:
    """The command for this run: its launcher option, else the user's environment."""
    launcher = config.get("launcher") or {}
    command = launcher.get("notify_command") if isinstance(launcher, dict) else None
    return command or os.environ.get(ENV) or None


def notify(run: Run, status: str, error: str | None, log: logging.Logger) -> int | None:
    """Run the notify command for `run` ending in `status`; returns its exit status
    (None: no command, or it could not run)."""
    try:
        command = notify_command(run.config)
    except Exception:  # an unreadable config must not turn a finished run into a failure
        return None
    if not command:
        return None
    values = {
        "run_id": run.id,
        "short_id": run.short_id,
        "status": status,
        "run_dir": str(run.path.resolve()),
    }
    try:
        line = command.format(**{k: shlex.quote(v) for k, v in values.items()})
    except (KeyError, IndexError, ValueError) as exc:
        log.error("notify_command %r: bad placeholder (%s); use {run_id} {status} …", command, exc)
        return None
    env = {
        **os.environ,
        **{f"LABDECK_{k.upper()}": v for k, v in values.items()},
        "LABDECK_ERROR": error or "",
    }
    try:
        done = subprocess.run(
            line,
            shell=True,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        log.error("notify_command did not finish in %.0f s; killed: %s", TIMEOUT_S, line)
        return None
    except OSError as exc:
        log.error("notify_command could not start (%s): %s", exc, line)
        return None
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or [""]
        log.error("notify_command exited %d: %s %s", done.returncode, line, tail[0])
    else:
        log.info("notify_command ran for %s (%s)", run.id, status)
    return done.returncode
