"""The whole pipeline on this machine: local generation, local LoRA, local judge (tiny model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from feedback_helpers import lines, only_run

pytestmark = pytest.mark.slow


def test_local_pipeline(tiny_llama: Path, results_dir: Path, lab, tmp_path: Path) -> None:
    m = json.dumps(str(tiny_llama))
    preset = tmp_path / "local.toml"
    preset.write_text(
        "\n".join(
            [
                'kind = "feedback"',
                'title = "local"',
                "[params]",
                f"generation_model = {m}",
                f"model = {m}",
                f"judge = {m}",
                "n = 4",
                "test_size = 2",
                "max_tokens = 6",
                "eval_max_tokens = 6",
                "judge_max_tokens = 4",
                "epochs = 1",
                "batch_size = 2",
                "micro_batch_size = 2",
                "learning_rate = 0.001",
                "max_seq_length = 256",
                'device_map = "none"',
                "max_unparsed = 1.0",  # a random judge gives verdicts by chance only
                f"output = {json.dumps(str(tmp_path / 'out'))}",
            ]
        )
        + "\n"
    )
    proc = lab("run", str(preset), "--results", str(results_dir))
    assert proc.returncode == 0, proc.stderr
    run = only_run(results_dir)
    model = json.loads((run / "artifacts/finetuned_model.json").read_text())
    assert (
        model["backend"] == "local" and (run / model["adapter"] / "adapter_config.json").is_file()
    )
    train = [json.loads(ln) for ln in (run / "artifacts/training.jsonl").read_text().splitlines()]
    assert len(train) == 4 and all(r["messages"][-1]["weight"] == 1 for r in train)
    judged = [r for r in lines(run / "records.jsonl") if r.get("unit") == "judged"]
    outcomes = [r["outcome"] for r in judged]
    assert len(judged) == 2 and set(outcomes) <= {"model1", "model2", "tie", "unparsed"}
    summary = json.loads((tmp_path / "out" / "eval_summary.json").read_text())
    assert summary["test_size"] == 2 and "win_rate_ci95" in summary["results"]
    assert summary["results"]["n_unparsed"] == outcomes.count("unparsed")
    state = json.loads((run / "state.json").read_text())
    assert state["status"] == "completed"
