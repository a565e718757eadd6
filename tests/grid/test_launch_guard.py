"""A process that executes a run never submits one: the one place that submits refuses
inside a runner, and a launcher's worker executes its run instead of launching it."""

from __future__ import annotations

import json
import re

import pytest

from labdeck.backend.cli import main
from labdeck.backend.errors import UserError
from labdeck.backend.launchers import RUNNER_ENV, options_of, submit
from labdeck.backend.runs import list_runs


@pytest.fixture
def queued_run(results_dir):
    """A counter run recorded for the Slurm launcher, waiting (status queued)."""
    assert main(["run", "--kind", "counter", "--set", "units=3", "--quiet"]) == 0
    (run,) = list_runs(results_dir)
    config = json.loads((run.path / "config.json").read_text())
    config["launcher"] = {"name": "slurm", "processes": 1}
    (run.path / "config.json").write_text(json.dumps(config))
    (run.path / "records.jsonl").unlink()
    run.write_state(status="queued", slurm={"job_id": "4242", "state": "PENDING"})
    return run


@pytest.mark.parametrize(
    "env, where",
    [
        ({"TORCHELASTIC_RUN_ID": "x", "RANK": "1", "WORLD_SIZE": "2"}, "a torchrun rank (1)"),
        ({RUNNER_ENV: "/somewhere/run"}, "the runner of run"),
        ({"SLURM_JOB_ID": "4242"}, "its own Slurm job 4242"),
    ],
)
def test_submit_refuses_inside_a_runner(queued_run, results_dir, monkeypatch, env, where) -> None:
    for k in ("TORCHELASTIC_RUN_ID", "WORLD_SIZE", RUNNER_ENV, "SLURM_JOB_ID"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(UserError, match=re.escape(f"not submitted: this process is {where}")):
        submit([queued_run], options_of(queued_run), results_dir, foreground=False)


def test_another_allocation_may_submit(queued_run, results_dir, monkeypatch) -> None:
    """An interactive allocation (salloc) of another job is a login shell like any other:
    the guard lets the submit through to the launcher (which then needs sbatch)."""
    monkeypatch.setenv("SLURM_JOB_ID", "777")
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(UserError, match="sbatch"):
        submit([queued_run], options_of(queued_run), results_dir, foreground=False)


def test_a_torchrun_worker_of_a_slurm_run_executes_it_here(queued_run, monkeypatch) -> None:
    """What a Slurm job's ranks run (`resume --only-queued` under torchrun) executes the
    run in place; it used to hand it to the Slurm launcher again, every rank submitting
    a new job that did the same."""
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "x")
    monkeypatch.setenv("PATH", "/nonexistent")  # no sbatch: a submit could only fail
    assert main(["resume", str(queued_run.path), "--only-queued", "--quiet"]) == 0
    assert queued_run.status() == "completed"
    assert queued_run.state()["slurm"]["job_id"] == "4242"
    assert len(queued_run.records_path.read_text().splitlines()) == 3


def test_slurm_options_reach_the_batch_script(tmp_path, monkeypatch) -> None:
    """The first-class sbatch options and the requeue settings, as sbatch would get them."""
    from labdeck.backend.launchers import parse_options, slurm

    monkeypatch.setattr(slurm, "check", lambda _options: None)  # no sbatch needed to render
    sets = [
        "gres=gpu:a100:2", "mem_per_gpu=40G", "exclude=node[7-8]", "comment=sweep 3",
        'setup=["module load cuda/12.4", "source ~/venv/bin/activate"]', "max_num_timeout=5",
    ]  # fmt: skip
    options = parse_options(None, "slurm", sets, "--launch")
    assert (options.signal_delay_s, options.max_num_timeout) == (120, 5)
    ex = slurm.executor(options, tmp_path, "labdeck-counter")
    script = ex._executor._make_submission_file_text("true", "uid")
    for line in (
        "#SBATCH --gres=gpu:a100:2", "#SBATCH --mem-per-gpu=40G", "#SBATCH --exclude='node[7-8]'",
        "#SBATCH --comment='sweep 3'", "#SBATCH --signal=USR2@120",
    ):  # fmt: skip
        assert line in script, script
    assert (
        script.index("module load cuda/12.4")
        < script.index("source ~/venv")
        < script.index("# command")
    )
    assert ex._executor.max_num_timeout == 5
    with pytest.raises(UserError, match=r"launcher\.signal_delay_s"):
        parse_options(None, "slurm", ["signal_delay_s=-1"], "--launch")
