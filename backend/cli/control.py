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
    launch_by_resources,
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


def _started_elsewhere(run: Run, status: str, in_group: bool) -> str | None:
    """Why resuming `run` would start a second copy of it: a Slurm job that is waiting
    to (re)start it, or, within a group, a runner or a live local queue that has it."""
    from ..runs import SCHEDULER_WAITING, queue_gone

    st = run.state()
    slurm = st.get("slurm") or {}
    if status == "queued" and slurm.get("state") in {*SCHEDULER_WAITING, "RUNNING"}:
        return (
            f"its Slurm job {slurm.get('job_id')} is {slurm['state']} and continues the run "
            f"when it starts (`labdeck stop {run.short_id}` cancels it)"
        )
    if not in_group:
        return None  # the run lock refuses a live runner; a queued run may start by hand
    if status == "running":
        return "running"
    queue = st.get("queue") or {}
    if status == "queued" and queue.get("driver") and not st.get("pid") and not queue_gone(st):
        return f"waiting in the local queue (pid {queue['driver']})"
    return None


def cmd_resume(args: argparse.Namespace) -> int:
    from ..launchers import options_of, refresh

    runs = targets_of(args)
    if args.only_queued or inside_torchrun():
        return _execute_as_worker(args, runs)
    refresh(runs)  # the scheduler's latest word: a requeued job may be about to continue
    todo = []
    for run in runs:
        status = run.status()
        if status == "completed":
            if not args.quiet:
                say(f"{run.id} is already completed; nothing to do")
            continue
        if status not in (*RESUMABLE, "running"):  # running: the run lock gives the refusal
            raise UserError(
                f"{run.id}: status {status}; only {', '.join(RESUMABLE)} runs can be resumed"
            )
        coming = _started_elsewhere(run, status, in_group=len(runs) > 1)
        if coming and len(runs) == 1:
            raise UserError(f"{run.id}: not resumed: {coming}")
        if coming:
            if not args.quiet:
                say(f"{run.id}: left alone: {coming}", markup=False)
            continue
        todo.append(run)
    if not todo:
        return 0
    if getattr(args, "retry_job", False):
        for run in todo:
            request_job_retry(run)
    options = options_of(todo[0])
    if len(runs) == 1 and todo[0].status() == "running":
        return execute_foreground(todo[0], args.quiet)  # the run lock names its runner
    if len(runs) > 1 or options.name != "local" or options.processes > 1 or args.detach:
        # a group (its queue is restarted in the background), a cluster, torchrun, or
        # --detach: a launcher's queue takes them, within the machine's slots
        for r in todo:
            r.set_aside("queued")  # keeps each earlier attempt's active time
        return launch_by_resources(args, todo, detach=args.detach or len(runs) > 1)
    return execute_foreground(todo[0], args.quiet)


def _execute_as_worker(args: argparse.Namespace, runs: list[Run]) -> int:
    """The process a launcher started for one run (the queue's worker, a Slurm job's
    torchrun ranks): it executes the run here and never hands it to a launcher again."""
    if len(runs) != 1:
        raise UserError("a launcher's worker executes exactly one run")
    run = runs[0]
    if args.only_queued and run.status() != "queued":
        return 0  # stopped or started elsewhere while it waited
    return execute_foreground(run, args.quiet)


def request_job_retry(run: Run) -> None:
    """`--retry-job`: ask the next attempt to replace a remote fine-tune job that ended in
    error (a request file the run consumes; without it a failed job is never replaced)."""
    from ..kinds.feedback.finetune import RETRY_JOB_REQUEST

    params = run.config.get("params", {})
    if run.kind != "feedback" or params.get("backend") != "together":
        raise UserError(
            f"{run.id}: --retry-job applies to runs with a Together fine-tune job "
            "(kind feedback, backend = together)"
        )
    (run.path / RETRY_JOB_REQUEST).write_text(str(time.time()), encoding="utf-8")


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
