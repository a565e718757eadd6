"""Per-level metrics are emitted exactly once per run, however often it is stopped and
resumed, and the sweep knows what it emitted from the run's own state, not by reading
its event stream back (a rotated or truncated events.jsonl changes nothing)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from labdeck.backend import cli
from labdeck.backend.kinds.degradation.sweep import Sweep
from tests.degradation.conftest import only_run, read_events, write_prompts

pytestmark = pytest.mark.slow

LEVEL_METRICS = {"perplexity", "mean_tokens_out", "distinct_2", "mattr", "repetition_rate"}


def test_resumed_sweep_emits_each_level_metric_exactly_once(
    results_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prompts = write_prompts(tmp_path / "p.json", ["Name a fruit.", "Say hello."])
    real_emit = Sweep._emit_level

    def emit_then_stop(self: Sweep, group: str, level: float) -> None:
        real_emit(self, group, level)
        if level == 0.0:  # stop right after the first level's metrics went out
            self.ctx._stop.set()

    monkeypatch.setattr(Sweep, "_emit_level", emit_then_stop)
    argv = ["run", "--kind", "degradation", "--title", "once", "--quiet"]
    for s in (
        "model=smollm2-135m",
        "cpu_threads=1",
        "generation.do_sample=false",
        "generation.max_new_tokens=3",
        f"prompts.set={json.dumps(str(prompts))}",
        'param_groups=["attention"]',
        "levels=[0.0, 0.3]",
        "compute_perplexity=true",
        "memory.pause_seconds=0",  # a busy shared host must not slow the test down
    ):
        argv += ["--set", s]
    assert cli.main([*argv, "--results", str(results_dir)]) == 130  # interrupted
    run_dir = only_run(results_dir)
    # stopped: final metrics from the records so far, before any resume
    stopped = json.loads((run_dir / "artifacts" / "summary.json").read_text())
    assert stopped["partial"] is True and stopped["final_metrics"]["perplexity_attention"] > 0
    first = read_events(run_dir)
    assert {e["name"] for e in first if e["type"] == "metric" and e["level"] == 0.0} == (
        LEVEL_METRICS
    )
    # events.jsonl rotated away between attempts (a dashboard tool compacting it, a copy
    # of the run without its event history): the resumed run still knows what it emitted
    (tmp_path / "rotated").mkdir()
    (run_dir / "events.jsonl").rename(tmp_path / "rotated" / "events.jsonl")
    monkeypatch.setattr(Sweep, "_emit_level", real_emit)
    assert cli.main(["resume", run_dir.name, "--quiet", "--results", str(results_dir)]) == 0

    events = read_events(tmp_path / "rotated") + read_events(run_dir)
    per_level = Counter(
        (e["name"], e["group"], e["level"])
        for e in events
        if e["type"] == "metric" and "level" in e
    )
    expected = {(n, "attention", lv) for n in LEVEL_METRICS for lv in (0.0, 0.3)}
    assert set(per_level) == expected
    assert all(count == 1 for count in per_level.values()), per_level
