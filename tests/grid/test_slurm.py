"""The Slurm launcher against a real single-node Slurm (scripts/local-slurm.sh).

Skipped, with the reason, where no cluster answers (see tests/conftest.py)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from waiting import wait_for

from labdeck.backend.cli import main
from labdeck.backend.groups import list_groups
from labdeck.backend.launchers import refresh
from labdeck.backend.launchers.slurm import scheduler_states
from labdeck.backend.runs import list_runs

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def records(run) -> list[tuple]:
    if not run.records_path.is_file():
        return []
    return [
        (r["key"], r["value"]) for r in map(json.loads, run.records_path.read_text().splitlines())
    ]


def test_a_grid_runs_as_one_job_array_with_the_records_of_local_runs(results_dir, lab) -> None:
    grid = ["--kind", "counter", "--set", "units=5", "--grid", "seed=1,2,3,4"]
    p = lab("run", *grid, "--launcher", "slurm", "--launch", "array_parallelism=2", check=True)
    gid = p.stdout.split()[-1]
    group = list_groups(results_dir)[gid]
    jobs = [r.state()["slurm"]["job_id"] for r in group.members]
    assert len({j.split("_")[0] for j in jobs}) == 1  # one array
    assert sorted(j.split("_")[1] for j in jobs) == ["0", "1", "2", "3"]

    wait_for(lambda: group.statuses() == {"completed": 4}, 120, "the array to complete")

    def all_completed_in_slurm() -> bool:  # the job outlives the runner by a moment
        refresh(group.members)
        return {r.state()["slurm"]["state"] for r in group.members} == {"COMPLETED"}

    wait_for(all_completed_in_slurm, 30, "sacct to report the array COMPLETED")
    assert main(["run", *grid, "--launch", "concurrency=2", "--quiet"]) == 0
    local = next(g for g in list_groups(results_dir).values() if g.id != gid)
    for a, b in zip(group.members, local.members, strict=True):
        assert group.coords(a) == local.coords(b)
        assert records(a) == records(b) and len(records(a)) == 5
    p = lab("ls", env={"COLUMNS": "200"}, check=True)
    assert "4 completed" in p.stdout


def test_scancel_interrupts_and_resume_resubmits_to_identical_records(
    results_dir, lab, tmp_path: Path
) -> None:
    args = ["--kind", "counter", "--set", "units=30", "--set", "unit_seconds=0.1"]
    lab("run", *args, "--title", "cluster", "--launcher", "slurm", check=True)
    (run,) = list_runs(results_dir)
    wait_for(lambda: len(records(run)) >= 3, 60, "the job to start recording")
    job = run.state()["slurm"]["job_id"]

    # without accounting, states still come from squeue
    no_sacct = tmp_path / "bin"
    no_sacct.mkdir()
    (no_sacct / "sacct").write_text(
        "#!/bin/sh\necho 'sacct: error: accounting disabled' >&2\nexit 1\n"
    )
    (no_sacct / "sacct").chmod(0o755)
    path = os.environ["PATH"]
    os.environ["PATH"] = f"{no_sacct}:{path}"
    try:
        assert scheduler_states([job, "999999"]) == {job: "RUNNING", "999999": "GONE"}
    finally:
        os.environ["PATH"] = path

    subprocess.run(["scancel", job], check=True)
    wait_for(lambda: run.status() in ("interrupted", "crashed"), 60, "the cancelled run to end")
    done = len(records(run))
    assert 3 <= done < 30

    def cancelled_in_slurm() -> bool:
        refresh([run])
        return run.state()["slurm"]["state"] == "CANCELLED"

    wait_for(cancelled_in_slurm, 30, "sacct to report the job CANCELLED")

    p = lab("resume", run.short_id, check=True)
    assert "submitted 1 run(s) to Slurm" in p.stdout
    assert run.state()["slurm"]["job_id"] != job
    wait_for(lambda: run.status() == "completed", 90, "the resubmitted run to complete")
    assert run.state()["attempts"] == 2
    main(["run", *args, "--set", "unit_seconds=0.0", "--title", "here", "--quiet"])
    here = next(r for r in list_runs(results_dir) if r.title == "here")
    assert records(run) == [(k, v) for k, v in records(here)] and len(records(run)) == 30


def test_preemption_requeues_and_the_requeued_job_resumes_from_the_ledger(results_dir, lab) -> None:
    """submitit's preemption signal (USR2): the job checkpoints, requeues itself, and the
    requeued job continues the run: no record lost, none doubled."""
    args = ["--kind", "counter", "--set", "units=25", "--set", "unit_seconds=0.1"]
    lab("run", *args, "--title", "preempted", "--launcher", "slurm", check=True)
    (run,) = list_runs(results_dir)
    wait_for(lambda: len(records(run)) >= 3, 60, "the job to start recording")
    job = run.state()["slurm"]["job_id"]
    subprocess.run(["scancel", "--signal=USR2", job], check=True)
    wait_for(lambda: run.state()["slurm"]["state"] == "REQUEUED", 60, "the job to requeue itself")
    assert run.status() == "queued"

    def held_back_and_node_idle() -> bool:
        job_state = subprocess.run(
            ["squeue", "-h", "-j", job, "-o", "%T %r"], capture_output=True, text=True
        ).stdout.strip()
        node = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True)
        return job_state == "PENDING BeginTime" and node.stdout.strip() == "idle"

    wait_for(held_back_and_node_idle, 60, "the requeued job to wait and the node to be free")
    # Slurm holds a requeued job back for a while before it may start again; a real
    # cluster waits it out, the test lets it start sooner. Not within the second of the
    # requeue, though: slurmd refuses a launch whose credential is not newer than the
    # revocation of the old one (one-second resolution), "Job credential revoked".
    time.sleep(2.5)
    subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], check=True)
    wait_for(lambda: run.status() == "completed", 90, "the requeued job to complete")
    assert run.state()["attempts"] >= 2
    assert run.state()["slurm"]["job_id"] == job  # the same job, requeued
    keys = [k for k, _ in records(run)]
    assert len(keys) == 25 and len(set(keys)) == 25
