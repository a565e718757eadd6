"""API faults as a feedback run meets them: a refused key stops the stage with one line."""

from __future__ import annotations

import json
from itertools import pairwise
from pathlib import Path

import pytest
from feedback_helpers import api_preset, lines, only_run
from together_loopback import Loopback

pytestmark = pytest.mark.slow


def test_a_401_stops_the_stage_at_once_with_one_line(
    server: Loopback, results_dir: Path, lab, tmp_path: Path
) -> None:
    server.fault("/v1/chat", "401", 1000)
    preset = api_preset(tmp_path, server.url, stages=["process"], concurrency=4)
    proc = lab("run", str(preset), "--results", str(results_dir))
    assert proc.returncode == 1
    out = (proc.stdout + proc.stderr).splitlines()
    assert not [ln for ln in out if "warning" in ln], out
    # one message, shown where the progress view reports errors and again as the result
    printed = {ln.split("error: ", 1)[1] for ln in out if "HTTP 401" in ln}
    assert len(printed) == 1 and "refused the credentials" in next(iter(printed)), out
    run = only_run(results_dir)
    state = json.loads((run / "state.json").read_text())
    assert state["last_error"].startswith("model ") and "HTTP 401" in state["last_error"]
    events = lines(run / "events.jsonl")
    assert not [e for e in events if e["type"] == "log" and e.get("level") == "warning"]
    assert not [r for r in lines(run / "records.jsonl") if r.get("failed")]
    assert len(server.arrived("/v1/chat")) <= 4  # 30 conversations, only those in flight sent


def test_a_judge_that_never_decides_fails_the_stage_and_reports_no_rate(
    server: Loopback, results_dir: Path, lab, tmp_path: Path
) -> None:
    server.state.judge_text = "Both answers have merits; I cannot decide."
    preset = api_preset(tmp_path, server.url, n=3, test_size=4)
    proc = lab("run", str(preset), "--results", str(results_dir))
    assert proc.returncode == 1
    run = only_run(results_dir)
    state = json.loads((run / "state.json").read_text())
    assert state["last_error"].startswith(
        "judge meta-llama/Meta-Llama-3.1-70B-Instruct-Turbo: 4 of 4 prompts had no readable "
        "verdict (more than max_unparsed = 0.2)"
    )
    assert state["metrics"]["n_unparsed"] == 4
    assert state["metrics"]["position_consistency"] is None  # was 1.0 as "consistent ties"
    assert state["metrics"]["win_rate"] is None
    judged = [r for r in lines(run / "records.jsonl") if r.get("unit") == "judged"]
    assert len(judged) == 4 and {r["outcome"] for r in judged} == {"unparsed"}
    tally = [e for e in lines(run / "events.jsonl") if e["type"] == "tally"][-1]
    assert (tally["ties"], tally["n_unparsed"], tally["win_rate"]) == (0, 4, None)


def test_pacing_holds_across_stages_and_the_fine_tune_calls(
    server: Loopback, results_dir: Path, lab, tmp_path: Path
) -> None:
    """requests_per_minute = 600: every API request of the run, whatever its stage or
    model, starts at least 0.1 s after the one before (one limiter per endpoint and key)."""
    preset = api_preset(
        tmp_path, server.url, n=3, test_size=2, requests_per_minute=600, concurrency=8
    )
    proc = lab("run", str(preset), "--results", str(results_dir))
    assert proc.returncode == 0, proc.stderr
    times = server.arrived("/v1/")
    gaps = [b - a for a, b in pairwise(times)]
    # arrival times jitter by a few ms on a loaded machine; a burst (a limiter per stage
    # or per model, or unpaced job polls) shows as near-zero gaps and dense windows
    assert len(times) > 20 and min(gaps) >= 0.05, sorted(gaps)[:5]
    assert min(b - a for a, b in zip(times, times[10:], strict=False)) >= 0.9
