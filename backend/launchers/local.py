"""The `local` launcher: a queue on this machine with a concurrency limit.

Runs wait with status `queued` until a slot is free. Slots are the machine's: lock
files in a per-user runtime folder (`slots_dir`, `$LABDECK_SLOTS_DIR` to move it) held
with `flock` by the running member itself (the lock is inherited by the runner
process), so the limit holds across every command that starts a run on this machine,
whatever its results folder: a grid, `run --detach` (one queue per command), the
dashboard (which runs the same commands), and a run in the foreground, which waits for
a slot itself. A slot frees itself when its runner ends, however it ends. The queue is
driven by a detached process (`labdeck _queue`), not by the dashboard, so closing the
dashboard (or the shell) does not stop it. Each waiting run records its queue's pid:
a queue killed outright shows its runs as `queued (queue gone)`, and `labdeck resume`
starts a new queue for them.

Default concurrency: one run per GPU, each pinned to its GPU with
CUDA_VISIBLE_DEVICES; on a machine without a GPU, one run at a time.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
from pydantic import Field

from ..launch import cli_argv, launch_detached
from ..runs import LOG, Run, effective_status, this_host
from . import RUNNER_ENV, LauncherOptions

QUEUE_DIR = ".queue"
POLL_SECONDS = 0.2


class Options(LauncherOptions):
    name: str = "local"
    concurrency: int | None = Field(
        None, ge=1, le=1024, description="runs at once (default: one per GPU, 1 without a GPU)"
    )


def gpu_count() -> int:
    """GPUs this process may use (NVML, honouring CUDA_VISIBLE_DEVICES); 0 on a CPU machine."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            return int(pynvml.nvmlDeviceGetCount())
        finally:
            pynvml.nvmlShutdown()
    except Exception:
        return 0


def default_concurrency(options: Options) -> tuple[int, list[str]]:
    """(slots, device of each slot): GPU ids to pin, or empty strings on a CPU machine."""
    gpus = gpu_count()
    visible = [
        d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()
    ]
    ids = visible or [str(i) for i in range(gpus)]
    per_run = max(1, options.processes)
    if ids:
        n = options.concurrency or max(1, len(ids) // per_run)
        devices = [",".join(ids[(i * per_run) % len(ids) :][:per_run]) for i in range(n)]
        return n, devices
    return options.concurrency or 1, [""] * (options.concurrency or 1)


SLOTS_ENV = "LABDECK_SLOTS_DIR"


def slots_dir() -> Path:
    """Where this machine's slot files live for this user (the runtime folder, or /tmp)."""
    if os.environ.get(SLOTS_ENV):
        return Path(os.environ[SLOTS_ENV])
    base = os.environ.get("XDG_RUNTIME_DIR") or "/tmp"
    return Path(base) / f"labdeck-{os.getuid()}" / "slots"


class Slots:
    """`n` flock'ed slot files; a taken slot's fd is handed to the runner that uses it."""

    def __init__(self, n: int) -> None:
        self.dir = slots_dir()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.n = n

    def try_take(self) -> tuple[int, int] | None:
        for i in range(self.n):
            fd = os.open(self.dir / f"slot-{i}.lock", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            return i, fd
        return None


def worker_argv(run: Run, options: Options) -> list[str]:
    """The command that executes one queued run (under torchrun when processes > 1)."""
    from ..distributed import torchrun_argv

    args = ["resume", str(run.path), "--quiet", "--only-queued"]
    if options.processes > 1:
        return torchrun_argv(options.processes, args)
    return cli_argv(*args)


def drive(runs: list[Run], options: Options, results: Path) -> dict[str, int]:
    """Start the queued runs in order as slots free up; wait for all. Returns exit codes."""
    n, devices = default_concurrency(options)
    slots = Slots(n)
    pending = list(runs)
    procs: dict[int, tuple[Run, subprocess.Popen]] = {}
    codes: dict[str, int] = {}
    for pos, r in enumerate(pending):
        r.write_state(queue=queue_entry(pos))
    while pending or procs:
        while pending:
            if effective_status(pending[0].state()) != "queued":
                pending.pop(0)  # stopped (or started by hand) while it waited
                continue
            taken = slots.try_take()
            if taken is None:
                break
            slot, fd = taken
            run = pending.pop(0)
            env = dict(os.environ, PYTHONUNBUFFERED="1", LABDECK_RESULTS=str(results))
            env[RUNNER_ENV] = str(run.path)  # the worker executes; it never submits
            if devices[slot]:
                env["CUDA_VISIBLE_DEVICES"] = devices[slot]
            with open(run.path / LOG, "ab") as out:
                proc = subprocess.Popen(
                    worker_argv(run, options),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    pass_fds=(fd,),
                    env=env,
                )
            os.close(fd)  # the runner process holds the slot from now on
            procs[proc.pid] = (run, proc)
        if not procs:
            time.sleep(POLL_SECONDS)  # every slot is held by another queue's runs
            continue
        if pending and len(procs) < n:
            # a slot may free in another queue: look again soon
            time.sleep(POLL_SECONDS)
            for pid, (run, proc) in list(procs.items()):
                if proc.poll() is not None:
                    codes[run.id] = proc.returncode
                    del procs[pid]
            continue
        pid, status = os.wait()
        if pid in procs:
            run, proc = procs.pop(pid)
            proc.returncode = os.waitstatus_to_exitcode(status)
            codes[run.id] = proc.returncode
    return codes


def queue_entry(position: int, driver: int | None = None) -> dict[str, Any]:
    """What a waiting run records of its queue, so a dead queue can be told (`queue_gone`)."""
    pid = driver or os.getpid()
    try:
        started = psutil.Process(pid).create_time()
    except psutil.Error:
        started = None
    return {
        "launcher": "local",
        "position": position,
        "driver": pid,
        "driver_started": started,
        "host": this_host(),
    }


@contextlib.contextmanager
def foreground_slot(run: Run, options: Options, say: Callable[[str], None]) -> Iterator[bool]:
    """A slot for a run executed in this process (not by a queue); waits while the
    machine is full. Yields False when the run was stopped while it waited."""
    if os.environ.get(RUNNER_ENV):  # a queue's worker: its queue took the slot for it
        yield True
        return
    n, devices = default_concurrency(options)
    slots = Slots(n)
    taken = slots.try_take()
    if taken is None:
        run.write_state(status="queued", pid=None, queue=queue_entry(0))
        say(f"{run.id}: waiting for a free slot ({n} run(s) at once on this machine)")
        while taken is None:
            time.sleep(POLL_SECONDS)
            if effective_status(run.state()) != "queued":
                yield False  # stopped while it waited
                return
            taken = slots.try_take()
    slot, fd = taken
    if devices[slot] and "CUDA_VISIBLE_DEVICES" not in os.environ:
        os.environ["CUDA_VISIBLE_DEVICES"] = devices[slot]
    try:
        yield True
    finally:
        os.close(fd)


def submit(runs: list[Run], options: Options, results: Path, foreground: bool) -> str:
    if foreground:
        codes = drive(runs, options, results)
        bad = [rid for rid, c in codes.items() if c]
        return f"{len(codes)} run(s) finished" + (f", {len(bad)} not completed" if bad else "")
    argv = ["_queue", *(str(r.path) for r in runs)]
    (results / QUEUE_DIR).mkdir(parents=True, exist_ok=True)
    pid = launch_detached(argv, results, results / QUEUE_DIR / "queue.log")
    for pos, r in enumerate(runs):  # the new queue owns them from now on
        r.write_state(queue=queue_entry(pos, pid))
    return f"queued {len(runs)} run(s) on this machine (queue pid {pid})"


def stop(run: Run) -> str | None:
    """A queued run is taken out of the queue; a running one gets the generic stop."""
    st = run.state()
    if effective_status(st) == "queued" and not st.get("pid"):
        run.write_state(status="interrupted", ended=time.time(), last_error=None)
        return f"{run.id}: taken out of the queue (interrupted; `labdeck resume` runs it)"
    return None
