"""Together fine-tune jobs get every training parameter they take, refuse what they cannot
take (at validation, or against the model's limits before the upload), and a job that
ended in error is replaced only on request (`resume --retry-job`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from feedback_helpers import api_preset, lines, only_run
from together_loopback import Loopback

pytestmark = pytest.mark.slow

TRAINING = {
    "lora_rank": 16,
    "lora_alpha": 32.0,
    "lora_dropout": 0.05,
    "lora_modules": "q_proj,v_proj",
    "batch_size": 4,
    "max_seq_length": 512,
    "epochs": 2,
}


def test_the_job_gets_the_training_parameters(
    server: Loopback, results_dir: Path, lab, tmp_path: Path
) -> None:
    preset = api_preset(tmp_path, server.url, stages=["process", "finetune"], n=2, **TRAINING)
    proc = lab("run", str(preset), "--results", str(results_dir))
    assert proc.returncode == 0, proc.stderr
    [job] = server.state.jobs.values()
    body = job.body
    assert body["training_type"] == {
        "type": "Lora",
        "lora_r": 16,
        "lora_alpha": 32,
        "lora_dropout": 0.05,
        "lora_trainable_modules": "q_proj,v_proj",
    }
    assert (body["batch_size"], body["max_seq_length"], body["n_epochs"]) == (4, 512, 2)


@pytest.mark.parametrize(
    ("sets", "key"),
    [
        (["micro_batch_size=2"], "micro_batch_size"),
        (["lora_alpha=16.5"], "lora_alpha"),
        (["full=true", "lora_rank=16"], "lora_rank"),
    ],
)
def test_what_a_together_job_cannot_take_is_refused_at_validation(
    server: Loopback, results_dir: Path, lab, tmp_path: Path, sets: list[str], key: str
) -> None:
    preset = api_preset(tmp_path, server.url, stages=["process", "finetune"], n=2)
    args = [a for s in sets for a in ("--set", s)]
    proc = lab("run", str(preset), *args, "--results", str(results_dir))
    assert proc.returncode == 2, proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert key in line, line
    assert not list(results_dir.iterdir())


def test_a_value_beyond_the_models_limits_stops_before_the_upload(
    server: Loopback, results_dir: Path, lab, tmp_path: Path
) -> None:
    preset = api_preset(tmp_path, server.url, stages=["process", "finetune"], n=2, lora_rank=128)
    proc = lab("run", str(preset), "--results", str(results_dir))
    assert proc.returncode == 1
    run = only_run(results_dir)
    error = json.loads((run / "state.json").read_text())["last_error"]
    assert error.startswith("params.lora_rank = 128: LoRA rank at most 64 for fine-tuning")
    assert not server.state.files and not server.state.jobs  # nothing uploaded or created
    done = [r for r in lines(run / "records.jsonl") if r.get("stage") == "process"]
    assert len(done) == 2  # the process stage's work is kept


def test_a_failed_job_is_replaced_only_on_request(
    server: Loopback, results_dir: Path, lab, tmp_path: Path
) -> None:
    server.state.fail_job = "out of capacity"
    preset = api_preset(tmp_path, server.url, stages=["process", "finetune"], n=2)
    where = ("--results", str(results_dir))
    first = lab("run", str(preset), *where)
    assert first.returncode == 1
    run = only_run(results_dir)
    error = json.loads((run / "state.json").read_text())["last_error"]
    assert "ended error: out of capacity" in error and "--retry-job" in error
    server.state.fail_job = None  # the capacity came back
    plain = lab("resume", run.name, *where)
    assert plain.returncode == 1 and server.state.jobs_created == 1  # never silently
    retry = lab("resume", run.name, "--retry-job", *where)
    assert retry.returncode == 0, retry.stdout + retry.stderr
    assert server.state.jobs_created == 2 and len(server.state.files) == 1
    failed, new = server.state.jobs.values()
    assert new.body["training_file"] == failed.body["training_file"]
    model = json.loads((run / "artifacts/finetuned_model.json").read_text())
    assert model["job_id"] == new.id and model["name"]
    assert not (run / "retry-job.request").exists()
    again = lab("resume", run.name, "--retry-job", *where)  # completed: nothing to do
    assert again.returncode == 0 and server.state.jobs_created == 2
