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

import contextlib
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from pydantic import Field

from ..errors import UserError
from ..runs import RESUMABLE, SCHEDULER_ENDED, Run, effective_status
from . import LauncherOptions, options_of

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
    signal_delay_s: int = Field(
        120, ge=0, description="seconds before the time limit that the job is told to checkpoint"
    )
    max_num_timeout: int = Field(
        3, ge=0, description="times a job that hits its time limit is requeued to continue"
    )
    setup: list[str] = Field(
        default_factory=list, description="shell lines run before the job (module load ...)"
    )
    gres: str | None = Field(None, description="generic resources, e.g. gpu:a100:2")
    mem_per_gpu: str | None = Field(None, description="memory per GPU, e.g. 40G")
    exclude: str | None = Field(None, description="nodes not to use, e.g. node[7-8]")
    comment: str | None = Field(None, description="job comment shown by squeue/sacct")
    extra: dict[str, Any] = Field(
        default_factory=dict, description="further sbatch flags, e.g. {mail_type = 'END'}"
    )


class SlurmRunTask:
    """What the Slurm job runs on each of its nodes: the labdeck runner on one run
    directory, directly (one process) or as torchrun ranks. Checkpointable."""

    def __call__(self, run_dir: str, processes: int = 1, nodes: int = 1) -> str:
        from .. import launchers
        from ..runner import execute

        os.environ[launchers.RUNNER_ENV] = run_dir  # nothing below may submit again
        run = Run(Path(run_dir))
        env = _job_environment()
        first = env is None or env.global_rank == 0
        if first:
            if run.status() in RESUMABLE:  # a job Slurm requeued after the runner stopped
                run.write_state(status="queued", pid=None)
            run.write_state(
                slurm={
                    **(run.state().get("slurm") or {}),
                    "job_id": _job_id_from_env(),
                    "state": "RUNNING",
                    "node": socket.gethostname(),
                }
            )
        try:
            if processes * nodes > 1:
                return _run_ranks(run, _torchrun_on_this_node(env, run_dir, processes, nodes))
            status = execute(run)
            return _after_time_limits(run, status)
        except SystemExit:
            # submitit's preemption/time-limit handler requeued the job and is exiting:
            # leave the run queued so the requeued job (or a resume) continues it.
            if first:
                run.write_state(
                    status="queued",
                    pid=None,
                    slurm={**run.state().get("slurm", {}), "state": "REQUEUED"},
                )
            raise

    def checkpoint(self, run_dir: str, processes: int = 1, nodes: int = 1) -> Any:
        import submitit

        return submitit.helpers.DelayedSubmission(SlurmRunTask(), run_dir, processes, nodes)


def _job_environment():
    """submitit's view of this job (node rank, host names); None outside a job."""
    import submitit

    try:
        return submitit.JobEnvironment()
    except RuntimeError:
        return None


def _torchrun_on_this_node(env, run_dir: str, processes: int, nodes: int) -> list[str]:
    """torchrun for this node's `processes` ranks; the rendezvous is on the job's first
    node, at a port derived from the job id (the same on every node, unlikely to clash
    with another job sharing the node)."""
    from ..distributed import torchrun_argv

    hosts = env.hostnames if env is not None else [socket.gethostname()]
    job = int(str(env.job_id if env is not None else os.getpid()).split("_")[0])
    return torchrun_argv(
        processes,
        ["resume", run_dir, "--quiet", "--only-queued"],
        nodes=nodes,
        node_rank=env.node if env is not None else 0,
        master_addr=hosts[0],
        master_port=20000 + job % 20000,
    )


def _run_ranks(run: Run, argv: list[str]) -> str:
    """torchrun on this node, waited for. When submitit gives up after too many time
    limits (it raises here, in the waiting process), the ranks are told to stop
    (SIGTERM: they end at a unit boundary, `interrupted`) before the job is killed."""
    proc = subprocess.Popen(argv)
    try:
        proc.wait()
    except Exception as exc:
        if "timed-out too many times" not in str(exc):
            raise
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=max(1, options_of(run).signal_delay_s - 10))
        run.write_state(status="failed", last_error=f"{type(exc).__name__}: {exc}")
        return _after_time_limits(run, "failed")
    return run.status()


def _after_time_limits(run: Run, status: str) -> str:
    """submitit ends a job that hit its time limit more than `max_num_timeout` times by
    raising inside the run; the runner records that as a failure while Slurm reports
    the job COMPLETED. It is neither: the run stopped at a unit boundary's checkpoint and
    `labdeck resume` continues it."""
    error = run.state().get("last_error") or ""
    if status != "failed" or "timed-out too many times" not in error:
        return status
    limit = options_of(run).max_num_timeout
    run.write_state(
        status="interrupted",
        last_error=(
            f"Slurm time limit reached {limit + 1} time(s) (max_num_timeout={limit}); "
            f"`labdeck resume {run.short_id}` continues it"
        ),
        slurm={**(run.state().get("slurm") or {}), "state": "TIMEOUT_EXHAUSTED"},
    )
    return "interrupted"


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
    ex = submitit.AutoExecutor(
        folder=results / LOG_DIR / "%j",
        cluster="slurm",
        slurm_max_num_timeout=options.max_num_timeout,
    )
    params: dict[str, Any] = {
        "name": name,
        "nodes": options.nodes,
        "tasks_per_node": 1,
        "cpus_per_task": options.cpus_per_task,
        "timeout_min": options.time_min,
        "slurm_signal_delay_s": options.signal_delay_s,
        "slurm_additional_parameters": dict(options.extra),
    }
    if options.gpus_per_node:
        params["gpus_per_node"] = options.gpus_per_node
    if options.mem_gb:
        params["mem_gb"] = options.mem_gb
    if options.setup:
        params["slurm_setup"] = list(options.setup)
    for key in (
        "partition",
        "account",
        "qos",
        "constraint",
        "gres",
        "mem_per_gpu",
        "exclude",
        "comment",
    ):
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
    n = len(runs)
    try:
        if n == 1:
            jobs = [ex.submit(task, str(runs[0].path), options.processes, options.nodes)]
        else:
            jobs = ex.map_array(
                task, [str(r.path) for r in runs], [options.processes] * n, [options.nodes] * n
            )
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
            slurm={
                "job_id": str(job.job_id),
                "state": "PENDING",
                "submitted": time.time(),
                "stdout": str(job.paths.stdout),
                "stderr": str(job.paths.stderr),
            }
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


# How long a job squeue no longer lists (GONE) is asked about again: sacct can lag the
# job's end by seconds, and FAILED or TIMEOUT tells the user more than GONE.
GONE_RECHECK_S = 600.0


def _settled(slurm: dict[str, Any], now: float) -> bool:
    """The job's final state is known: an ended state from sacct, or GONE long enough
    that accounting (if the cluster has any) would have said more by now."""
    state = slurm.get("state")
    if state == "GONE":
        return now - float(slurm.get("checked") or 0) > GONE_RECHECK_S
    return state in SCHEDULER_ENDED


def refresh(runs: list[Run]) -> None:
    """Record the scheduler's state of every Slurm run whose final state is not known yet."""
    live = []
    now = time.time()
    for r in runs:
        st = r.state()
        slurm = st.get("slurm") or {}
        if slurm.get("job_id") and not _settled(slurm, now):
            live.append((r, st, str(slurm["job_id"])))
    if not live:
        return
    states = scheduler_states([j for _, _, j in live])
    for r, st, job in live:
        new = states.get(job)
        old = st["slurm"].get("state")
        if new and new != old and not (new == "GONE" and old in SCHEDULER_ENDED):
            fresh = r.state()  # re-read: the runner may have written in between
            if (fresh.get("slurm") or {}).get("job_id") != job:
                continue
            changes: dict[str, Any] = {
                "slurm": {**fresh["slurm"], "state": new, "checked": time.time()}
            }
            if new in SCHEDULER_ENDED and fresh.get("status") in ("queued", "running"):
                said = fresh.get("last_error")
                if not said or said.startswith(f"Slurm job {job} ended GONE "):  # ours
                    said = _job_ended_early(fresh, new)
                changes["last_error"] = said
            r.write_state(**changes)


def _job_ended_early(state: dict[str, Any], job_state: str) -> str:
    """Why a job ended with no word from the runner: the last line of the job's error
    log (submitit's traceback, a setup line's message) and where the logs are."""
    slurm = state.get("slurm") or {}
    started = "while the runner was running" if state.get("pid") else "before the runner started"
    reason = ""
    err = Path(str(slurm.get("stderr") or ""))
    if slurm.get("stderr") and err.is_file():
        with open(err, "rb") as fh:
            fh.seek(max(0, err.stat().st_size - 8192))
            lines = [x.strip() for x in fh.read().decode("utf-8", "replace").splitlines()]
        lines = [x for x in lines if x and not x.startswith("srun: ")] or lines
        reason = next((x for x in reversed(lines) if x), "")
    logs = " and ".join(str(slurm[k]) for k in ("stderr", "stdout") if slurm.get(k))
    return (
        f"Slurm job {slurm.get('job_id')} ended {job_state} {started}"
        + (f": {reason}" if reason else "")
        + (f" (logs: {logs})" if logs else "")
    )


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
