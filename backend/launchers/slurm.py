"""The `slurm` launcher: runs become Slurm jobs through submitit; a grid is one job array.

Each job executes the same runner as a local run (`SlurmRunTask` calls
`runner.execute` on the run directory), writing into the run directory on the shared
filesystem that the dashboard on the login node watches. state.json carries
`slurm` = {job_id, state, node}; `refresh` keeps `state` current from `sacct` (or
`squeue` where accounting is not set up), and a run whose job has ended while its
state.json still says running/queued is shown as crashed (resumable).

Stopping is `scancel`: Slurm sends SIGTERM to the job step, which the runner turns
into a clean `interrupted` after the unit in hand. Preemption and time limits arrive
as submitit's USR2: the task is checkpointable, so submitit requeues it and the
requeued job resumes from the ledger.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from pydantic import Field

from ..errors import UserError
from ..runs import SCHEDULER_ENDED, Run, effective_status
from . import LauncherOptions

LOG_DIR = ".slurm"  # submitit's pickles and job logs, inside the results folder


class Options(LauncherOptions):
    name: str = "slurm"
    partition: str | None = Field(None, description="Slurm partition (-p)")
    nodes: int = Field(1, ge=1, description="nodes per run")
    gpus_per_node: int = Field(0, ge=0, description="GPUs per node")
    cpus_per_task: int = Field(1, ge=1, description="CPUs per task")
    mem_gb: float | None = Field(None, gt=0, description="memory per node in GB")
    time_min: int = Field(60, ge=1, description="time limit in minutes")
    account: str | None = Field(None, description="Slurm account (-A)")
    qos: str | None = Field(None, description="quality of service")
    constraint: str | None = Field(None, description="node features (-C)")
    array_parallelism: int | None = Field(
        None, ge=1, description="at most this many grid members at once (array %N)"
    )
    extra: dict[str, Any] = Field(
        default_factory=dict, description="further sbatch flags, e.g. {exclude = 'node7'}"
    )


class SlurmRunTask:
    """What the Slurm job runs: the labdeck runner on one run directory. Checkpointable."""

    def __call__(self, run_dir: str, processes: int = 1) -> str:
        from ..runner import execute

        run = Run(Path(run_dir))
        run.write_state(
            slurm={
                **(run.state().get("slurm") or {}),
                "job_id": _job_id_from_env(),
                "state": "RUNNING",
                "node": socket.gethostname(),
            }
        )
        if processes > 1:
            from ..distributed import torchrun_argv

            argv = torchrun_argv(processes, ["resume", run_dir, "--quiet", "--only-queued"])
            subprocess.run(argv, check=False)
            return run.status()
        try:
            return execute(run)
        except SystemExit:
            # submitit's preemption/time-limit handler requeued the job and is exiting:
            # leave the run queued so the requeued job (or a resume) continues it.
            run.write_state(
                status="queued",
                pid=None,
                slurm={**run.state().get("slurm", {}), "state": "REQUEUED"},
            )
            raise

    def checkpoint(self, run_dir: str, processes: int = 1) -> Any:
        import submitit

        return submitit.helpers.DelayedSubmission(SlurmRunTask(), run_dir, processes)


def _job_id_from_env() -> str | None:
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array and task:
        return f"{array}_{task}"
    return os.environ.get("SLURM_JOB_ID")


def check(options: Options) -> None:
    if not shutil.which("sbatch"):
        raise UserError("launcher slurm: `sbatch` not found; is this a Slurm login node?")


def executor(options: Options, results: Path, name: str):
    import submitit

    check(options)
    ex = submitit.AutoExecutor(folder=results / LOG_DIR / "%j", cluster="slurm")
    params: dict[str, Any] = {
        "name": name,
        "nodes": options.nodes,
        "tasks_per_node": 1,
        "cpus_per_task": options.cpus_per_task,
        "timeout_min": options.time_min,
        "slurm_additional_parameters": dict(options.extra),
    }
    if options.gpus_per_node:
        params["gpus_per_node"] = options.gpus_per_node
    if options.mem_gb:
        params["mem_gb"] = options.mem_gb
    for key in ("partition", "account", "qos", "constraint"):
        value = getattr(options, key)
        if value:
            params[f"slurm_{key}"] = value
    if options.array_parallelism:
        params["slurm_array_parallelism"] = options.array_parallelism
    ex.update_parameters(**params)
    return ex


def submit(runs: list[Run], options: Options, results: Path, foreground: bool) -> str:
    """One job per run; several runs (a grid) go as one job array."""
    ex = executor(options, results, f"labdeck-{runs[0].kind}")
    for r in runs:
        r.write_state(status="queued", pid=None, slurm={"state": "SUBMITTING"})
    task = SlurmRunTask()
    try:
        if len(runs) == 1:
            jobs = [ex.submit(task, str(runs[0].path), options.processes)]
        else:
            jobs = ex.map_array(task, [str(r.path) for r in runs], [options.processes] * len(runs))
    except Exception as exc:  # sbatch refused: nothing runs; say why on one line
        msg = str(exc).strip().splitlines()
        for r in runs:
            r.write_state(slurm={"state": "NOT_SUBMITTED"})
        raise UserError(f"launcher slurm: sbatch failed: {msg[-1] if msg else exc}") from None
    for r, job in zip(runs, jobs, strict=True):
        st = r.state()
        if st.get("pid"):  # already started and recorded its own job id
            continue
        r.write_state(
            slurm={"job_id": str(job.job_id), "state": "PENDING", "submitted": time.time()}
        )
    ids = ", ".join(sorted({str(j.job_id).split("_")[0] for j in jobs}))
    return f"submitted {len(runs)} run(s) to Slurm (job {ids})"


def scheduler_states(job_ids: list[str]) -> dict[str, str]:
    """Job id (`123` or `123_4`) → Slurm state, from sacct; from squeue if sacct fails."""
    from submitit.slurm.slurm import SlurmInfoWatcher

    if not job_ids:
        return {}
    mains = sorted({j.split("_")[0] for j in job_ids})
    watcher = SlurmInfoWatcher()
    try:
        out = subprocess.run(
            ["sacct", "-X", "-o", "JobID,State", "--parsable2", "-j", ",".join(mains)],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
        info = watcher.read_info(out)
        if info:
            return {j: info[j]["State"].split()[0] for j in job_ids if j in info}
    except (OSError, subprocess.SubprocessError):
        pass
    return _squeue_states(job_ids, mains)


def _squeue_states(job_ids: list[str], mains: list[str]) -> dict[str, str]:
    """squeue knows only live jobs: a job it does not list has ended (state GONE)."""
    try:
        out = subprocess.run(
            ["squeue", "-h", "-r", "-o", "%i|%T", "-j", ",".join(mains)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    live = dict(line.split("|", 1) for line in out.splitlines() if "|" in line)
    return {j: live.get(j, "GONE") for j in job_ids}


def refresh(runs: list[Run]) -> None:
    """Record the scheduler's state of every Slurm run not known to have ended yet."""
    live = []
    for r in runs:
        st = r.state()
        slurm = st.get("slurm") or {}
        if slurm.get("job_id") and slurm.get("state") not in SCHEDULER_ENDED:
            live.append((r, st, str(slurm["job_id"])))
    if not live:
        return
    states = scheduler_states([j for _, _, j in live])
    for r, st, job in live:
        new = states.get(job)
        if new and new != st["slurm"].get("state"):
            fresh = r.state()  # re-read: the runner may have written in between
            if (fresh.get("slurm") or {}).get("job_id") == job:
                r.write_state(slurm={**fresh["slurm"], "state": new, "checked": time.time()})


def stop(run: Run) -> str | None:
    st = run.state()
    job = (st.get("slurm") or {}).get("job_id")
    if not job:
        return None
    subprocess.run(["scancel", str(job)], capture_output=True, timeout=30, check=False)
    if effective_status(st) == "queued" and not st.get("pid"):
        run.write_state(
            status="interrupted", ended=time.time(), slurm={**st["slurm"], "state": "CANCELLED"}
        )
        return f"{run.id}: Slurm job {job} cancelled before it started (interrupted)"
    return f"{run.id}: scancel {job} sent; the runner stops after the unit in hand"
