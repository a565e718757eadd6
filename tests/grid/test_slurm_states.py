"""What `ls`, `show` and `resume` say about a Slurm run agrees with the scheduler, on the
real local Slurm: a requeued job that waits, time limits reached more often than the
run may be requeued, and a job that fails before the runner starts."""

from __future__ import annotations

import subprocess
import time

import pytest
from waiting import wait_for

from labdeck.backend.launchers import refresh
from labdeck.backend.runs import list_runs

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

COUNT = ["--kind", "counter", "--set", "unit_seconds=0.1", "--launcher", "slurm"]


def n_records(run) -> int:
    return len(run.records_path.read_text().splitlines()) if run.records_path.is_file() else 0


def slurm_state(run) -> str:
    refresh([run])
    return run.state()["slurm"]["state"]


def test_a_requeued_job_shows_queued_and_resume_names_it(results_dir, lab) -> None:
    lab("run", *COUNT, "--set", "units=40", check=True)
    (run,) = list_runs(results_dir)
    wait_for(lambda: n_records(run) >= 3, 60, "the job to start recording")
    job = run.state()["slurm"]["job_id"]
    subprocess.run(["scontrol", "requeue", job], check=True)
    wait_for(lambda: run.state().get("status") == "interrupted", 60, "the runner to stop")
    wait_for(lambda: slurm_state(run) == "PENDING", 60, "the job to wait again")
    assert run.status() == "queued"
    ls = lab("ls", env={"COLUMNS": "200"}, check=True).stdout
    assert f"queued slurm:{job} PENDING" in ls and "interrupted" not in ls
    p = lab("resume", run.short_id)
    assert p.returncode != 0
    assert f"Slurm job {job} is PENDING" in p.stderr and "labdeck stop" in p.stderr
    # the requeued job itself continues the run (a real cluster waits out the hold)
    time.sleep(2.5)
    subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], check=True)
    wait_for(lambda: run.status() == "completed", 90, "the requeued job to complete")
    assert run.state()["slurm"]["job_id"] == job and n_records(run) == 40


def test_time_limits_beyond_max_num_timeout_leave_the_run_interrupted(results_dir, lab) -> None:
    """submitit ends a job that reached its time limit once more than `max_num_timeout`
    allows; Slurm then reports it COMPLETED. The run is resumable, and says why."""
    lab(
        "run", *COUNT, "--set", "units=200", "--launch", "time_min=1",
        "--launch", "max_num_timeout=0", "--launch", "signal_delay_s=0", check=True,
    )  # fmt: skip
    (run,) = list_runs(results_dir)
    wait_for(lambda: n_records(run) >= 3, 60, "the job to start recording")
    job = run.state()["slurm"]["job_id"]
    # the time-limit warning, as Slurm sends it signal_delay_s before the limit
    subprocess.run(["scancel", "--signal=USR2", job], check=True)
    wait_for(lambda: run.status() != "running", 60, "the runner to stop")
    wait_for(lambda: slurm_state(run) == "COMPLETED", 60, "sacct to report the job")
    state = run.state()
    assert run.status() == "interrupted", state
    assert "time limit reached 1 time(s) (max_num_timeout=0)" in state["last_error"]
    ls = lab("ls", env={"COLUMNS": "200"}, check=True).stdout
    assert "interrupted" in ls and "failed" not in ls
    assert n_records(run) < 200


def test_a_job_that_fails_before_the_runner_records_why_and_show_names_its_logs(
    results_dir, lab
) -> None:
    lab(
        "run", *COUNT, "--set", "units=3",
        "--launch", 'setup=["echo module labdeck-env not found >&2", "exit 3"]',
        "--launch", "comment=labdeck-test", check=True,
    )  # fmt: skip
    (run,) = list_runs(results_dir)
    try:
        wait_for(lambda: slurm_state(run) == "FAILED", 120, "the job to fail")
    except AssertionError:
        raise AssertionError(f"the job never showed FAILED: {run.state()}") from None
    state = run.state()
    assert run.status() == "crashed"
    assert "before the runner started: module labdeck-env not found" in state["last_error"]
    err = state["slurm"]["stderr"]
    assert err in state["last_error"]
    show = lab("show", run.short_id, env={"COLUMNS": "300"}, check=True).stdout
    assert "job logs:" in show and err in show and state["slurm"]["stdout"] in show
    script = next((results_dir / ".slurm").glob("*/*_submission.sh")).read_text()
    assert "#SBATCH --comment=labdeck-test" in script
    assert "#SBATCH --signal=USR2@120" in script  # signal_delay_s's default
    # squeue asked before sacct knew the job: GONE is asked about again, and the
    # message it produced gives way to sacct's state
    gone = state["last_error"].replace("ended FAILED", "ended GONE")
    run.write_state(slurm={**state["slurm"], "state": "GONE"}, last_error=gone)
    assert slurm_state(run) == "FAILED"
    assert "ended FAILED before the runner started" in run.state()["last_error"]
