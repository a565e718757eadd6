"""Data-parallel runs through the Slurm launcher on the real local Slurm: one submit is
one job, whatever the ranks do, and the job's torchrun ranks meet on the job's first
node (the multi-node path, with nodes=1)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from waiting import wait_for

from labdeck.backend.runs import list_runs

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def jobs_of(results: Path) -> set[str]:
    """Every job (an array counts once) any command submitted for this results folder,
    pending ones too (squeue) and ended ones (sacct): their submission scripts live
    under it."""
    out = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-a", "-S", "now-1hour", "-o", "JobID,SubmitLine"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    jobs = {line.split("|")[0].split("_")[0] for line in out.splitlines() if str(results) in line}
    queue = subprocess.run(
        ["squeue", "-h", "-r", "-o", "%i|%o"], capture_output=True, text=True, check=True
    ).stdout
    jobs |= {
        line.split("|")[0].split("_")[0] for line in queue.splitlines() if str(results) in line
    }
    return jobs


def test_a_two_process_run_is_one_job_that_completes(results_dir, lab) -> None:
    args = ["--kind", "counter", "--set", "units=6", "--set", "unit_seconds=0.2"]
    p = lab(
        "run", *args, "--launcher", "slurm", "--launch", "processes=2",
        "--launch", "cpus_per_task=2", check=True,
    )  # fmt: skip
    assert "submitted 1 run(s) to Slurm" in p.stdout
    (run,) = list_runs(results_dir)
    wait_for(
        lambda: run.status() in ("completed", "failed", "crashed"), 180, "the run to end", every=0.5
    )
    state = run.state()
    assert run.status() == "completed", (state, (run.path / "runner.log").read_text()[-3000:])
    # a few seconds more: a resubmitting rank would have shown up by now
    time.sleep(5)
    jobs = jobs_of(results_dir)
    assert jobs == {state["slurm"]["job_id"]}, jobs
    keys = [json.loads(x)["key"] for x in run.records_path.read_text().splitlines()]
    assert len(keys) == len(set(keys)) == 6
    # rank 1 ran too, and kept its log beside rank 0's
    assert (run.path / "runner.rank1.log").read_text().count("attempt 1") == 1


def test_a_launcher_axis_submits_one_job_per_resource_request(results_dir, lab) -> None:
    grid = ["--kind", "counter", "--set", "units=2", "--grid", "launch.cpus_per_task=1,2"]
    p = lab("run", *grid, "--grid", "seed=1,2", "--launcher", "slurm", check=True)
    gid = p.stdout.split()[-1]
    from labdeck.backend.groups import list_groups

    group = list_groups(results_dir)[gid]
    wait_for(lambda: group.statuses() == {"completed": 4}, 120, "the group to complete", every=0.5)
    arrays = {}
    for r in group.members:
        arrays.setdefault(r.config["launcher"]["cpus_per_task"], set()).add(
            r.state()["slurm"]["job_id"].split("_")[0]
        )
    assert sorted(arrays) == [1, 2] and all(len(a) == 1 for a in arrays.values())
    assert arrays[1] != arrays[2]
    scripts = {
        s.read_text().count("--cpus-per-task=2")
        for s in (results_dir / ".slurm").glob("*/*_submission.sh")
    }
    assert scripts == {0, 1}
    expected = arrays[1] | arrays[2]
    # the accounting database records a submission a moment after the job: wait for it
    wait_for(lambda: jobs_of(results_dir) >= expected, 30, "sacct to list the jobs", every=0.5)
    assert jobs_of(results_dir) == expected
