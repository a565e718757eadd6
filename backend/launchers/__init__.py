"""Launchers: where a run executes. One module per launcher in this folder.

A run says where it executes with a `[launcher]` table in its preset (or
`--launcher NAME` and `--launch key=value` on the command line). The table is
validated by the launcher's `Options` model and recorded in config.json under
`launcher`, so `resume` and `reproduce` send the run to the same place. Whatever the
launcher, the run directory is the same and the dashboard reads it the same way.

Adding a launcher is one module `backend/launchers/<name>.py` with:

- `Options`: a pydantic model of its table (subclass `LauncherOptions`, which carries
  `processes`, the data-parallel process count every launcher honours);
- `submit(runs, options, results, foreground) -> str`: start (or enqueue) the runs,
  which already exist on disk with status `queued`; return one line for the user;
- `stop(run) -> str | None`: cancel a run it started (None: use the generic stop);
- `check(options) -> None` (optional): refuse early (a `UserError`) what cannot be
  submitted from here, such as a missing `sbatch`, before any run directory exists;
- `refresh(runs) -> None` (optional): record the scheduler's view of the runs in
  their state.json (queued/running/gone) so `ls` and the dashboard show it and crash
  detection can use it.

The name of the module is the launcher's name; nothing else needs registering.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import UserError
from ..runs import Run

DEFAULT = "local"


class LauncherOptions(BaseModel):
    """What every launcher accepts; each launcher's `Options` adds its own fields."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(DEFAULT, description="the launcher module")
    processes: int = Field(
        1, ge=1, le=1024, description="data-parallel processes per run (torchrun)"
    )
    notify_command: str | None = Field(
        None,
        description="shell command the runner runs when the run ends; may name {run_id} "
        "{short_id} {status} {run_dir} (default: $LABDECK_NOTIFY_COMMAND)",
    )


@cache
def launcher_names() -> tuple[str, ...]:
    return tuple(sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.ispkg))


def launcher_module(name: str) -> ModuleType:
    if name not in launcher_names():
        raise UserError(
            f"unknown launcher {name!r}; expected one of: {', '.join(launcher_names())}"
        )
    return importlib.import_module(f"{__name__}.{name}")


def parse_options(
    table: dict[str, Any] | None,
    name: str | None,
    sets: list[str],
    source: str,
    blame: dict[str, str] | None = None,
) -> LauncherOptions:
    """The `[launcher]` table, `--launcher NAME` and `--launch key=value`, validated;
    `blame` names the flag that gave a key when it is not `--launch` (a grid axis)."""
    from ..presets import apply_sets

    raw = dict(table or {})
    if name is not None:
        if raw.get("name") not in (None, name):
            raw = {}  # another launcher's options do not carry over
        raw["name"] = name
    raw = apply_sets(raw, sets, flag="--launch")
    set_keys = {s.partition("=")[0].strip() for s in sets}

    def where(loc: str) -> str:
        """The flag or file that gave the value at `loc`."""
        if blame and loc in blame:
            return blame[loc]
        if loc in set_keys:
            return f"--launch {loc}"
        if loc == "name" and name is not None:
            return "--launcher"
        return source

    try:
        mod = launcher_module(str(raw.get("name", DEFAULT)))
    except UserError as exc:
        raise UserError(f"{where('name')}: {exc}") from None
    try:
        options = mod.Options.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(x) for x in err.get("loc", ()))
        got = err.get("input")
        raise UserError(
            f"{where(loc)}: launcher.{loc}: {err.get('msg')}" + (f" (got {got!r})" if loc else "")
        ) from None
    if hasattr(mod, "check"):
        mod.check(options)
    return options


def options_of(run: Run) -> LauncherOptions:
    """The launcher a run was created with (runs from before launchers existed: local)."""
    raw = run.config.get("launcher") or {"name": DEFAULT}
    return launcher_module(raw.get("name", DEFAULT)).Options.model_validate(raw)


# Set in the environment of every process a launcher starts to execute a run (the
# queue's worker, a Slurm job's task and its torchrun ranks).
RUNNER_ENV = "LABDECK_RUNNER_OF"


def refuse_inside_runner(runs: list[Run]) -> None:
    """A process that executes a run never submits one: under torchrun, in a process a
    launcher started, or in the run's own Slurm allocation, a submit would start a
    second copy of what is already running, and that copy would submit again."""
    from ..distributed import under_torchrun

    job = os.environ.get("SLURM_JOB_ID")
    array = os.environ.get("SLURM_ARRAY_JOB_ID")
    for r in runs:
        own = str((r.state().get("slurm") or {}).get("job_id") or "")
        where = None
        if under_torchrun():
            where = f"a torchrun rank ({os.environ.get('RANK', '?')})"
        elif os.environ.get(RUNNER_ENV):
            where = f"the runner of {Path(os.environ[RUNNER_ENV]).name}"
        elif own and own.split("_")[0] in (job, array):
            where = f"its own Slurm job {own}"
        if where:
            raise UserError(
                f"{r.id}: not submitted: this process is {where}; a runner executes runs "
                "and never submits them (submit from a login shell instead)"
            )


def submit(runs: list[Run], options: LauncherOptions, results: Path, foreground: bool) -> str:
    """The one place runs are handed to a launcher (see `refuse_inside_runner`)."""
    refuse_inside_runner(runs)
    return launcher_module(options.name).submit(runs, options, results, foreground)


def stop(run: Run) -> str | None:
    return launcher_module(options_of(run).name).stop(run)


def refresh(runs: list[Run]) -> None:
    """Let each launcher record its scheduler's view of its live runs (one query each)."""
    by_name: dict[str, list[Run]] = {}
    for r in runs:
        try:
            name = (r.config.get("launcher") or {}).get("name", DEFAULT)
        except UserError:
            continue
        by_name.setdefault(name, []).append(r)
    for name, group in by_name.items():
        fn = getattr(launcher_module(name), "refresh", None)
        if fn:
            fn(group)
