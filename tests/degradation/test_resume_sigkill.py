"""A sweep killed with SIGKILL twice and resumed ends with exactly the records of an
uninterrupted greedy run: none lost, none doubled, every output identical."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.degradation.conftest import only_run, read_records, write_prompts

pytestmark = pytest.mark.slow

VOLATILE = {"timestamp", "duration", "batch_seconds", "vram_usage_percent"}
TOTAL = 12  # 2 groups × 2 levels × 1 repeat × 3 prompts


def _cmd(results: Path, prompts: Path) -> list[str]:
    sets = [
        "model=smollm2-135m",
        "cpu_threads=1",
        f"prompts.set={json.dumps(str(prompts))}",
        'param_groups=["attention", "mlp"]',
        "levels=[0.0, 0.3]",
        "max_batch_size=2",
        "generation.max_new_tokens=8",
        "generation.do_sample=false",
    ]
    argv = [
        sys.executable,
        "-m",
        "labdeck.backend.cli",
        "run",
        "--kind",
        "degradation",
        "--title",
        "kill",
    ]
    for s in sets:
        argv += ["--set", s]
    return [*argv, "--quiet", "--results", str(results)]


def _count(results: Path) -> int:
    runs = (
        [p for p in results.iterdir() if (p / "records.jsonl").is_file()]
        if results.exists()
        else []
    )
    if not runs:
        return 0
    return sum(
        1 for line in (runs[0] / "records.jsonl").read_bytes().split(b"\n") if line.endswith(b"}")
    )


def _kill_when(argv: list[str], results: Path, at_least: int, timeout: float = 120) -> int:
    """Start `argv`, SIGKILL it as soon as `at_least` records exist; returns the count then."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            n = _count(results)
            if n >= at_least:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                return _count(results)
            if proc.poll() is not None:
                pytest.fail(f"runner exited ({proc.returncode}) before {at_least} records")
            time.sleep(0.02)
        pytest.fail(f"no {at_least} records within {timeout}s")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _comparable(records: list[dict]) -> dict[str, dict]:
    keys = [r["key"] for r in records]
    assert len(keys) == len(set(keys)), "a record was written twice"
    return {r["key"]: {k: v for k, v in r.items() if k not in VOLATILE} for r in records}


def test_sigkill_twice_then_resume_matches_uninterrupted(tmp_path):
    prompts = write_prompts(
        tmp_path / "p.json", ["Name a fruit.", "What colour is the sky?", "Say hello."]
    )
    ref_results, cut_results = tmp_path / "ref", tmp_path / "cut"
    env = {**os.environ, "LABDECK_RESULTS": str(ref_results)}
    subprocess.run(_cmd(ref_results, prompts), check=True, env=env, capture_output=True)
    reference = read_records(only_run(ref_results))
    assert len(reference) == TOTAL

    first = _kill_when(_cmd(cut_results, prompts), cut_results, 2)
    assert 0 < first < TOTAL
    run_id = only_run(cut_results).name
    resume = [
        sys.executable,
        "-m",
        "labdeck.backend.cli",
        "resume",
        run_id,
        "--quiet",
        "--results",
        str(cut_results),
    ]
    second = _kill_when(resume, cut_results, first + 4)
    assert first < second < TOTAL, "the second kill must land mid-sweep too"
    done = subprocess.run(resume, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]

    resumed = read_records(only_run(cut_results))
    assert len(resumed) == TOTAL
    assert _comparable(resumed) == _comparable(reference)
    state = json.loads((only_run(cut_results) / "state.json").read_text())
    assert state["status"] == "completed" and state["attempts"] == 3
