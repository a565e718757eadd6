"""Verbs that act on a runner's life: resume, stop, kill, and the detached local queue."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..errors import UserError
from ..runs import RESUMABLE, Run
from .common import (
    execute_foreground,
    inside_torchrun,
    launch_runs,
    results_of,
    run_of,
    say,
    targets_of,
)


def cmd_queue(args: argparse.Namespace) -> int:
    """The detached local queue (started by `run --grid`/`--detach`): runs members in order."""
    from ..launchers import options_of
    from ..launchers.local import drive

    runs = [Run(Path(p)) for p in args.runs]
    drive(runs, options_of(runs[0]), results_of(args))
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    from ..launchers import options_of

    runs = targets_of(args)
    todo = []
    for run in runs:
        status = run.status()
        if args.only_queued and status != "queued":
            return 0  # the queue's worker: stopped or started elsewhere while it waited
        if status == "completed":
            if not args.quiet:
                say(f"{run.id} is already completed; nothing to do")
            continue
        if status not in (*RESUMABLE, "running"):  # running: the run lock gives the refusal
            raise UserError(
                f"{run.id}: status {status}; only {', '.join(RESUMABLE)} runs can be resumed"
            )
        todo.append(run)
    if not todo:
        return 0
    options = options_of(todo[0])
    if (
        len(runs) > 1
        or options.name != "local"
        or (options.processes > 1 and not inside_torchrun())
    ):
        running = [r for r in todo if r.status() == "running"]
        for r in running:  # its runner carries on; rewriting its state would orphan it
            if not args.quiet:
                say(f"{r.id} is running; left as it is")
        todo = [r for r in todo if r not in running]
        for r in todo:
            r.set_aside("queued")  # keeps each earlier attempt's active time
        if not todo:
            return 0
        return launch_runs(args, todo, options)
    run = todo[0]
    if args.detach:
        from ..launch import launch_run_detached

        pid = launch_run_detached(run.path)
        print(f"{run.id} resumed in the background (pid {pid})")
        return 0
    return execute_foreground(run, args.quiet)


def cmd_stop(args: argparse.Namespace) -> int:
    runs = targets_of(args)
    for run in runs:
        _stop_one(run)
    deadline = time.time() + args.wait
    while time.time() < deadline:
        if all(r.status() not in ("running", "queued") for r in runs):
            for r in runs:
                say(f"{r.id}: {r.status()}")
            return 0
        time.sleep(0.2)
    return 0


def _stop_one(run: Run) -> None:
    import os
    import signal

    from ..launchers import stop as launcher_stop
    from ..runner import request_stop_file
    from ..runs import pid_alive, this_host

    state = run.state()
    status = run.status()
    if status not in ("running", "queued"):
        say(f"{run.id} is {status}; nothing to stop")
        return
    request_stop_file(run)  # reaches a runner on another host through the shared filesystem
    message = launcher_stop(run)
    if message:
        say(message)
        return
    pid = state.get("pid")
    if state.get("host") == this_host() and pid_alive(pid, state.get("pid_started")):
        os.kill(pid, signal.SIGTERM)
    say(f"stop requested for {run.id}; it finishes the unit in hand, then stops")


def cmd_kill(args: argparse.Namespace) -> int:
    """SIGKILL the runner: for a run that does not answer `stop`. Its records stay, and
    `labdeck resume` continues it (the run shows as crashed)."""
    import os
    import signal

    from ..runs import pid_alive, this_host

    run = run_of(args)
    state = run.state()
    status = run.status()
    pid = state.get("pid")
    if status not in ("running", "queued") or not pid:
        say(f"{run.id} is {status}; no runner to kill")
        return 0
    if state.get("host") != this_host():
        raise UserError(
            f"{run.id}: its runner is on host {state.get('host')}; kill it there "
            f"(or `labdeck stop {run.short_id}`, which reaches it through the shared folder)"
        )
    if not pid_alive(pid, state.get("pid_started")):
        say(
            f"{run.id}: runner pid {pid} is already gone (crashed); resume with `labdeck resume {run.short_id}`"
        )
        return 0
    os.kill(pid, signal.SIGKILL)
    deadline = time.time() + 5
    while time.time() < deadline and pid_alive(pid, state.get("pid_started")):
        time.sleep(0.05)
    say(f"killed {run.id} (pid {pid}); resume with `labdeck resume {run.short_id}`")
    return 0
