"""A data-parallel kt run (two CPU processes, torchrun, gloo) survives what a single
process survives: a stop, a kill -9 of one rank and a rank's own error, each followed
by `labdeck resume`, ends with the records of an uninterrupted two-process run.

Rank 1 runs in a shadow whose checkpoints mirror rank 0's; its checkpoint swaps after a
resume used to fail (a link where a folder was expected), and its log was lost with
the shadow."""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path

import psutil
import pytest
from waiting import wait_for

from labdeck.backend.runs import list_runs

SETS = {
    "sim_num_students": 120, "sim_num_skills": 6, "sim_seq_len": 20, "seq_len": 20,
    "d_model": 16, "n_heads": 2, "num_encoder_blocks": 1, "d_ff": 32, "dropout": 0.0,
    "epochs": 10, "batch_size": 16, "max_semantic_students": 30,
    "alignment_global_students": 60, "max_correlation_students": 40,
    "warmup_constraint_epochs": 2, "alignment_warmup_epochs": 2,
    "consistency_rebalance_epoch": 2,
}  # fmt: skip
ENV = {"OMP_NUM_THREADS": "1"}
TIMING = ("seconds", "time", "per_s", "elapsed")  # wall-clock fields differ between runs


def records(run) -> list[dict]:
    def clean(value):
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items() if not any(t in k for t in TIMING)}
        return value

    return [clean(json.loads(x)) for x in run.records_path.read_text().splitlines()]


def n_records(run) -> int:
    return len(run.records_path.read_text().splitlines()) if run.records_path.is_file() else 0


def rank_process(run, rank: int) -> psutil.Process:
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if str(run.path) in " ".join(proc.info["cmdline"] or []) and (
                proc.environ().get("RANK") == str(rank)
            ):
                return proc
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    raise AssertionError(f"no rank {rank} process for {run.id}")


def resume_detached_until_running(lab, run) -> None:
    lab("resume", run.short_id, "--detach", env=ENV, check=True)
    wait_for(lambda: run.status() == "running", 120, "the resumed run to start", every=0.1)


def shadow_of(run) -> Path:
    """Rank 1's private directory, named in its log by the attempt that started last."""
    names = re.findall(
        r"run (labdeck-rank1-\S+) \(kt\) attempt", (run.path / "runner.rank1.log").read_text()
    )
    return Path(os.environ.get("TMPDIR", "/tmp")) / names[-1]


@pytest.mark.slow
def test_two_process_run_stopped_killed_and_failed_resumes_to_the_uninterrupted_records(
    results_dir, lab
) -> None:
    sets = [x for k, v in SETS.items() for x in ("--set", f"{k}={v}")]
    base = ["run", "--kind", "kt", *sets, "--launch", "processes=2", "--quiet"]
    lab(*base, "--title", "straight", env=ENV, check=True)
    lab(*base, "--title", "bumpy", "--detach", env=ENV, check=True)
    run = next(r for r in list_runs(results_dir) if r.title == "bumpy")
    straight = next(r for r in list_runs(results_dir) if r.title == "straight")

    # 1. a stop: every rank ends at the same epoch, the run is interrupted
    wait_for(lambda: n_records(run) >= 1, 120, "the first epoch", every=0.1)
    lab("stop", run.short_id, "--wait", "60", check=True)
    assert run.status() == "interrupted", run.state()
    stopped_at = n_records(run)
    assert stopped_at < SETS["epochs"]

    # 2. resumed (rank 1 now swaps checkpoints it mirrors), then rank 1 killed outright
    resume_detached_until_running(lab, run)
    wait_for(lambda: n_records(run) >= stopped_at + 2, 120, "two more epochs", every=0.1)
    rank_process(run, 1).send_signal(signal.SIGKILL)
    wait_for(lambda: run.status() != "running", 60, "the run to end after the kill", every=0.1)
    assert run.status() in ("failed", "crashed", "interrupted")
    assert n_records(run) < SETS["epochs"]

    # 3. resumed, then rank 1 hits an error of its own (its folder turned bad)
    before = n_records(run)
    resume_detached_until_running(lab, run)
    wait_for(lambda: n_records(run) >= before + 1, 120, "an epoch", every=0.1)
    shadow = shadow_of(run)
    for p in sorted((shadow / "checkpoints").rglob("*"), reverse=True):
        p.unlink() if p.is_symlink() or p.is_file() else p.rmdir()
    (shadow / "checkpoints").rmdir()
    (shadow / "checkpoints").write_text("not a folder")
    wait_for(lambda: run.status() != "running", 60, "the run to fail", every=0.1)
    state = run.state()
    assert run.status() == "failed", state
    assert state["last_error"].startswith("rank 1: "), state["last_error"]
    assert state["ranks"]["1"]["status"] == "failed"

    # 4. resumed to the end: the records of the uninterrupted run
    p = lab("resume", run.short_id, "--quiet", env=ENV)
    assert p.returncode == 0, (p.stdout, p.stderr, run.state())
    assert run.status() == "completed"
    assert run.state()["attempts"] == 4
    assert records(run) == records(straight)
    log1 = (run.path / "runner.rank1.log").read_text()
    assert log1.count(" attempt ") == 4 and "completed with" in log1
    assert not shadow.exists()
