"""End to end through the command line: kill -9 during epoch 3 and resume, reproduce and
compare, and the eval_explicit command from config.json. Real runner subprocesses."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labdeck.backend.jsonl import iter_jsonl
from labdeck.backend.ledger import unit_key
from labdeck.backend.runs import list_runs

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "presets" / "kt-demo.toml"
# Small enough for seconds per run; batch 8 gives each epoch many batches, so a kill
# that waits for epoch 3's first batch lands inside epoch 3.
SETS = {
    "sim_num_students": 200, "sim_num_skills": 8, "sim_seq_len": 20, "seq_len": 20,
    "d_model": 16, "n_heads": 2, "num_encoder_blocks": 1, "d_ff": 32, "epochs": 5,
    "batch_size": 8, "monitor_frequency": 1, "alignment_global_students": 40,
    "max_semantic_students": 20, "max_correlation_students": 20,
}  # fmt: skip


def labdeck(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-m", "labdeck.backend.cli", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if check:
        assert out.returncode == 0, out.stdout + out.stderr
    return out


def sets(**extra) -> list[str]:
    out = []
    for k, v in {**SETS, **extra}.items():
        out += ["--set", f"{k}={v}"]
    return out


def final_metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "artifacts" / "summary.json").read_text())["final_metrics"]


def new_run(results: Path, before: set[str]) -> Path:
    (path,) = [r.path for r in list_runs(results) if r.id not in before]
    return path


def test_kill_during_epoch_3_then_resume_matches_an_uninterrupted_run(results_dir: Path):
    labdeck("run", str(DEMO), "--title", "straight", "--quiet", *sets())
    straight = new_run(results_dir, set())
    before = {r.id for r in list_runs(results_dir)}

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [
        sys.executable,
        "-m",
        "labdeck.backend.cli",
        "run",
        str(DEMO),
        "--title",
        "killed",
        "--quiet",
        *sets(),
    ]
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.time() + 120
        killed_in_epoch_3 = False
        while time.time() < deadline and proc.poll() is None:
            runs = [r for r in list_runs(results_dir) if r.id not in before]
            if runs and any(
                e.get("type") == "progress" and e.get("done") == 2 and e.get("batch", 0) >= 2
                for e in iter_jsonl(runs[0].events_path)
            ):
                proc.send_signal(signal.SIGKILL)
                killed_in_epoch_3 = True
                break
            time.sleep(0.02)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert killed_in_epoch_3, "the run ended before epoch 3 could be interrupted"
    killed = new_run(results_dir, before)
    keys = [r["key"] for r in iter_jsonl(killed / "records.jsonl")]
    assert keys == [unit_key("epoch", 1), unit_key("epoch", 2)]

    labdeck("resume", killed.name, "--quiet")
    keys = [r["key"] for r in iter_jsonl(killed / "records.jsonl")]
    assert keys == [unit_key("epoch", n) for n in range(1, 6)] + [unit_key("eval")]
    assert final_metrics(killed) == final_metrics(straight)
    traj = [e for e in iter_jsonl(killed / "events.jsonl") if e["type"] == "trajectory"]
    assert sorted({e["epoch"] for e in traj}) == [1, 2, 3, 4, 5]


def test_reproduce_compare_all_pass_with_zero_diff_and_eval_explicit(results_dir: Path):
    labdeck("run", str(DEMO), "--title", "orig", "--quiet", *sets(epochs=3))
    original = new_run(results_dir, set())
    labdeck("reproduce", original.name, "--quiet")
    repro = new_run(results_dir, {original.name})
    assert (repro / "config.json").read_bytes() == (original / "config.json").read_bytes()
    a, b = final_metrics(original), final_metrics(repro)
    assert a == b and "best_val_auc" in a and "mastery_correlation" in a

    out = labdeck("compare", original.name)
    assert "best_val_auc" in out.stdout and "gain_correlation" in out.stdout
    assert "PASS" in out.stdout and "FAIL" not in out.stdout

    config = json.loads((original / "config.json").read_text())
    argv = shlex.split(config["commands"]["eval_explicit"])
    assert argv[:2] == ["labdeck", "eval"]
    (original / "artifacts" / "eval_results.json").unlink()
    labdeck(*argv[1:])
    ev = json.loads((original / "artifacts" / "eval_results.json").read_text())
    assert ev["test_auc"] == a["test_auc"]
    assert ev["test_mastery_correlation"] == a["mastery_correlation"]
