"""API faults as a feedback run meets them: a refused key stops the stage with one line."""

from __future__ import annotations

import json
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
