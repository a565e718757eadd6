"""Helpers every verb family shares: where results live, how a run is named on the
command line, printing without markup surprises, running a run in the foreground and
handing runs to their launcher.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..runs import Run, default_results_dir, resolve_run

EXIT = {"completed": 0, "interrupted": 130, "failed": 1}


def results_of(args: argparse.Namespace) -> Path:
    return Path(args.results) if getattr(args, "results", None) else default_results_dir()


def run_of(args: argparse.Namespace, attr: str = "run") -> Run:
    return resolve_run(results_of(args), getattr(args, attr))


def say(*objs: Any, markup: bool = True) -> None:
    """Print to stdout; through a pipe, a table's cells are padded to column width but
    its lines are not padded out to the widest line (`presets | cat` stays readable)."""
    from ..display import console, piped

    if not piped():
        console.print(*objs, markup=markup)
        return
    with console.capture() as captured:
        console.print(*objs, markup=markup)
    text = captured.get()
    sys.stdout.write("\n".join(line.rstrip() for line in text.split("\n")))
    sys.stdout.flush()


def finish(run: Run, status: str, quiet: bool) -> int:
    """The run's end in a few lines; `quiet` keeps only the error of a failed run (one
    line on stderr): quiet hides progress, never why a run failed."""
    if quiet:
        error = run.state().get("last_error") if status == "failed" else None
        if error:
            print(f"labdeck: error: {run.id}: {error}", file=sys.stderr)
    else:
        from ..display import labelled, table

        state = run.state()
        style = {"completed": "green", "interrupted": "yellow"}.get(status, "red")
        say(labelled(status, f"{run.id}  ({state.get('records', 0)} records)", style))
        if state.get("last_error"):
            say(labelled("error:", state["last_error"]))
        final = run.summary().get("final_metrics") if status == "completed" else None
        if final:
            say(
                table("final metrics", ["metric", "value"], [[k, v] for k, v in final.items()]),
                markup=False,
            )
        if status in ("interrupted", "failed"):
            say(f"resume with: labdeck resume {run.short_id}")
    return EXIT.get(status, 1)


def execute_foreground(run: Run, quiet: bool) -> int:
    """Execute a local run in this process, in one of the machine's slots (it waits for
    one while the machine is full; a queue's worker already holds its queue's)."""
    from ..launchers import options_of
    from ..launchers.local import foreground_slot

    options = options_of(run)
    if run.status() == "running" or options.name != "local":
        return _execute_here(run, quiet)  # the run lock refuses a live runner; a job's
        # allocation is its own limit
    with foreground_slot(run, options, (lambda _m: None) if quiet else say) as free:
        if not free:
            return finish(run, run.status(), quiet)  # stopped while it waited
        return _execute_here(run, quiet)


def _execute_here(run: Run, quiet: bool) -> int:
    from ..runner import execute

    if quiet:
        return finish(run, execute(run), quiet)
    from ..display import LiveProgress, PlainProgress, piped

    # A pipe or a log file gets plain lines; redrawn bars would fill it with escapes.
    with PlainProgress() if piped() else LiveProgress() as live:
        status = execute(run, listener=live, console=not piped())
    return finish(run, status, quiet)


def targets_of(args: argparse.Namespace, attr: str = "run") -> list[Run]:
    from ..groups import resolve_targets

    return resolve_targets(results_of(args), getattr(args, attr))


def inside_torchrun() -> bool:
    from ..distributed import under_torchrun

    return under_torchrun()


def launch_runs(
    args: argparse.Namespace, runs: list[Run], options, detach: bool | None = None
) -> int:
    """Hand runs to their launcher; in the foreground (local, no --detach) wait for them."""
    from ..launchers import submit

    foreground = options.name == "local" and not (args.detach if detach is None else detach)
    if not args.quiet:
        for r in runs:
            print(r.id, file=sys.stderr if foreground else sys.stdout)
    message = submit(runs, options, results_of(args), foreground)
    if not args.quiet:
        say(message, markup=False)
    if not foreground:
        return 0
    statuses = [r.status() for r in runs]
    if len(runs) == 1:
        return finish(runs[0], statuses[0], args.quiet)
    for r, status in zip(runs, statuses, strict=True):
        if status == "failed" and args.quiet:
            finish(r, status, quiet=True)  # the error line of each failed member
    return 0 if all(s == "completed" for s in statuses) else 1


def launch_by_resources(
    args: argparse.Namespace, runs: list[Run], detach: bool | None = None
) -> int:
    """`launch_runs` for runs that may ask different resources (a grid with `launch.*`
    axes): each run's recorded launcher options decide; runs asking the same go
    together (one job array, one queue)."""
    from ..launchers import options_of

    batches: dict[str, tuple[Any, list[Run]]] = {}
    for run in runs:
        options = options_of(run)
        batches.setdefault(options.model_dump_json(), (options, []))[1].append(run)
    code = 0
    for options, batch in batches.values():
        code = max(code, launch_runs(args, batch, options, detach=detach))
    return code


def model_revision(params: dict[str, Any]) -> dict[str, Any] | None:
    """What the run's `model` parameter resolves to now (kinds without one: None)."""
    from ..model_revision import resolve_revision

    spec = params.get("model")
    return resolve_revision(spec) if isinstance(spec, str) and spec else None
