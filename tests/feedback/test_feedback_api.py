"""The feedback kind end to end against the loopback Together server (real SDK, no network)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from feedback_helpers import KEY, api_preset, kill_when, lines, only_run, start_run
from together_loopback import Loopback

pytestmark = pytest.mark.slow


def test_full_run_through_a_429_storm(
    server: Loopback, results_dir: Path, lab, tmp_path: Path
) -> None:
    server.fault("/v1/chat", "429", 12, retry_after=0.2)
    server.fault("/v1/chat", "500", 2)
    preset = api_preset(tmp_path, server.url, n=6)
    proc = lab("run", str(preset), "--results", str(results_dir))
    assert proc.returncode == 0, proc.stderr
    run = only_run(results_dir)
    records = lines(run / "records.jsonl")
    processed = [r for r in records if r.get("stage") == "process" and not r.get("failed")]
    assert len(processed) == 6 and not [r for r in records if r.get("failed")]
    # the seed's output shape, plus the improved response
    export = json.loads((run / "artifacts/processed.json").read_text())
    assert set(export[0]) >= {
        "conversation_id", "improved", "generation_method", "original_assistant_response",
        "conversation_context", "improvement_timestamp", "improved_response",
    }  # fmt: skip
    assert export[0]["generation_method"] == "feedback_based"
    # exactly one job, trained on the uploaded file, followed to completion
    assert server.state.jobs_created == 1 and len(server.state.files) == 1
    job = next(iter(server.state.jobs.values()))
    assert job.body["suffix"] == "t" and job.body["training_type"]["type"] == "Lora"
    model = json.loads((run / "artifacts/finetuned_model.json").read_text())
    assert model["name"].startswith("loopback/") and model["job_id"] == job.id
    events = lines(run / "events.jsonl")
    assert [e["value"] for e in events if e["type"] == "metric" and e["name"] == "loss"][:2] == [
        2.0,
        1.0,
    ]
    assert any(e["type"] == "job" and e["status"] == "completed" for e in events)
    # the fine-tuned model answers with more detail: it wins every prompt in both orders
    summary = json.loads((run / "artifacts/eval_summary.json").read_text())
    assert (
        summary["results"]["model2_wins"] == 4 and summary["results"]["position_consistency"] == 1.0
    )
    tallies = [e for e in events if e["type"] == "tally"]
    assert [t["done"] for t in tallies][:4] == [1, 2, 3, 4]
    # the storm was waited out: requests counted, retries counted, nothing lost
    api = [e for e in events if e["type"] == "metric" and e["name"] == "api_retries"]
    assert api and api[-1]["value"] >= 14
    # the key went out as a header and was never written
    assert server.state.auth_headers == {f"Bearer {KEY}"}
    for f in run.rglob("*"):
        if f.is_file():
            assert KEY.encode() not in f.read_bytes(), f
    # a later run judges this run's fine-tuned model through a run reference
    again = lab(
        "run", str(preset), "--results", str(results_dir), "--title", "ref",
        "--set", 'stages=["evaluate"]', "--set", f"model2=run:{run.name}",
        "--set", 'test_conversations="run:' + run.name + '/processed"', "--set", "test_size=2",
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    ref = next(p for p in results_dir.iterdir() if p.name != run.name)
    config = json.loads((ref / "config.json").read_text())
    assert config["inputs"]["model2"]["run"]["id"] == run.name
    ref_summary = json.loads((ref / "artifacts/eval_summary.json").read_text())
    assert ref_summary["test_size"] == 2 and ref_summary["results"]["model2_wins"] == 2


def test_sigkill_while_processing_then_resume(
    server: Loopback, results_dir: Path, lab, tmp_path: Path
) -> None:
    server.state.latency = 0.15
    preset = api_preset(tmp_path, server.url, stages=["process"], concurrency=2)
    proc = start_run("run", str(preset), "--results", str(results_dir))

    def some_done() -> bool:
        runs = list(results_dir.iterdir())
        return bool(runs) and len(lines(runs[0] / "records.jsonl")) >= 5

    kill_when(proc, some_done)
    run = only_run(results_dir)
    before = len(lines(run / "records.jsonl"))
    assert 5 <= before < 30
    calls_before = server.state.chat_calls
    res = lab("resume", run.name, "--results", str(results_dir))
    assert res.returncode == 0, res.stderr
    ids = [
        r["conversation_id"] for r in lines(run / "records.jsonl") if r.get("stage") == "process"
    ]
    assert len(ids) == len(set(ids)) == 30  # no evaluate stage: nothing held out
    # only what was not recorded was asked again (plus at most the two in flight)
    assert server.state.chat_calls - calls_before <= 30 - before + 2


def test_sigkill_while_monitoring_the_job_then_resume(
    server: Loopback, results_dir: Path, lab, tmp_path: Path
) -> None:
    server.state.job_polls = 10_000  # the job runs until the test lets it finish
    preset = api_preset(
        tmp_path, server.url, stages=["process", "finetune"], n=3, poll_seconds=0.05
    )
    proc = start_run("run", str(preset), "--results", str(results_dir))

    def monitoring() -> bool:
        runs = list(results_dir.iterdir())
        events = lines(runs[0] / "events.jsonl") if runs else []
        return sum(e["type"] == "metric" and e.get("name") == "loss" for e in events) >= 2

    kill_when(proc, monitoring)
    assert server.state.jobs_created == 1
    job = next(iter(server.state.jobs.values()))
    server.state.job_polls = job.polls + 2
    run = only_run(results_dir)
    res = lab("resume", run.name, "--results", str(results_dir))
    assert res.returncode == 0, res.stderr
    assert server.state.jobs_created == 1 and len(server.state.files) == 1
    model = json.loads((run / "artifacts/finetuned_model.json").read_text())
    assert model["job_id"] == job.id and model["name"]


def test_failed_job_fails_the_run_with_the_api_message(
    server: Loopback, results_dir: Path, lab, tmp_path: Path
) -> None:
    server.state.fail_job = "training data could not be tokenized"
    preset = api_preset(tmp_path, server.url, stages=["process", "finetune"], n=2)
    proc = lab("run", str(preset), "--results", str(results_dir))
    assert proc.returncode == 1
    state = json.loads((only_run(results_dir) / "state.json").read_text())
    assert state["status"] == "failed"
    assert "ended error: training data could not be tokenized" in state["last_error"]


def test_failed_items_are_recorded_then_retried_on_resume(
    server: Loopback, results_dir: Path, lab, tmp_path: Path
) -> None:
    server.fault("/v1/chat", "400", 2)  # not retryable: the items fail at once
    preset = api_preset(tmp_path, server.url, stages=["process"], n=5, concurrency=1)
    first = lab("run", str(preset), "--results", str(results_dir))
    assert first.returncode == 1
    run = only_run(results_dir)
    state = json.loads((run / "state.json").read_text())
    assert "process: 2 of 5 conversations failed" in state["last_error"]
    assert "HTTP 400 bad request" in state["last_error"]
    failed = [r for r in lines(run / "records.jsonl") if r.get("failed")]
    assert len(failed) == 2 and {r["status"] for r in failed} == {400}
    calls = server.state.chat_calls
    again = lab("resume", run.name, "--results", str(results_dir))
    assert again.returncode == 0, again.stderr
    done = [
        r
        for r in lines(run / "records.jsonl")
        if r.get("stage") == "process" and not r.get("failed")
    ]
    assert len(done) == 5 and server.state.chat_calls - calls == 2  # only the failed ones again
