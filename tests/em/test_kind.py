"""The `em` kind end to end through the real command line, on a tiny random Llama:
a persona trained by one run and used by another through a run reference; reflections,
training, judged evaluation with activations, directions, summaries, plots; reflection
generation killed with SIGKILL and resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT

from labdeck.backend.generation import GenParams, generate_batch
from labdeck.backend.jsonl import iter_jsonl
from labdeck.backend.kinds.em.config import BUNDLED_DATASETS, DEFAULT_REFLECTION_TEMPLATE
from labdeck.backend.kinds.em.data import reflection_prompt
from labdeck.backend.models import load_model
from labdeck.backend.reports import plot_runs
from labdeck.backend.runs import Run, list_runs
from labdeck.backend.training import read_chat_jsonl

TINY = {
    "cpu_threads": 1,
    "dtype": "float32",
    "lora_rank": 4,
    "lora_alpha": 8.0,
    "learning_rate": 0.01,
    "warmup_steps": 0,
    "effective_batch_size": 4,
    "micro_batch_size": 2,
    "max_seq_length": 256,
}


def _sets(**params) -> list[str]:
    out = []
    for k, v in params.items():
        out += ["--set", f"{k}={json.dumps(v)}"]
    return out


def _run_id(results: Path, before: set[str]) -> str:
    new = [r.id for r in list_runs(results) if r.id not in before]
    assert len(new) == 1, new
    return new[0]


@pytest.mark.slow
def test_persona_from_run_reference_then_full_em_run(lab, results_dir, tiny_dir):
    model = str(tiny_dir)
    persona_sets = _sets(
        **TINY, model=model, dataset="goodness-persona", num_examples=4, evaluate=False,
        checkpoint_schedule=[],
    )  # fmt: skip
    proc = lab("run", "--kind", "em", "--title", "persona", "--quiet", *persona_sets)
    assert proc.returncode == 0, proc.stderr
    persona_id = next(r.id for r in list_runs(results_dir))
    short = persona_id[-6:]
    adapter = results_dir / persona_id / "checkpoints" / "final" / "adapter"
    assert (adapter / "adapter_config.json").is_file()

    em_sets = _sets(
        **TINY, model=model, persona=f"run:{short}", dataset="bad-advice", num_examples=4,
        with_reflection=True, reflection_max_new_tokens=6, checkpoint_schedule=[0],
        num_questions=2, samples_per_question=2, eval_max_new_tokens=6, judge_model=model,
        judge_min_number_mass=0.0, generation_batch_size=4, max_generation_batch_size=4,
        activation_layers=[0, 1],
    )  # fmt: skip
    before = {r.id for r in list_runs(results_dir)}
    proc = lab("run", "--kind", "em", "--title", "em", "--quiet", *em_sets)
    assert proc.returncode == 0, proc.stderr
    run_dir = results_dir / _run_id(results_dir, before)

    config = json.loads((run_dir / "config.json").read_text())
    ref = config["inputs"]["persona"]
    assert ref["run"]["id"] == persona_id and ref["run"]["artifact"] == "adapter"
    assert (
        ref["run"]["md5"]
        == json.loads((results_dir / persona_id / "config.json").read_text())["md5"]
    )
    assert Path(ref["path"]) == adapter.resolve() and len(ref["sha256"]) == 64
    info = json.loads((run_dir / "artifacts" / "experiment_info.json").read_text())
    assert info["adapter_sha256"] == ref["sha256"]

    art = run_dir / "artifacts"
    augmented = [json.loads(x) for x in (art / "augmented_dataset.jsonl").read_text().splitlines()]
    assert len(augmented) == 4
    samples = json.loads((art / "sample_reflections.json").read_text())
    assert len(samples) == 4
    assert augmented[0]["messages"][-1]["content"].startswith(samples[0]["example"][-1]["content"])
    assert "Reflection: " in augmented[0]["messages"][-1]["content"]

    summary = json.loads((art / "checkpoint_summary.json").read_text())
    assert [c["step"] for c in summary["checkpoints"]] == [0, 1]
    assert all(c["n"] == 4 for c in summary["checkpoints"])
    for step in (0, 1):
        rows = (art / f"checkpoint_{step}_eval.csv").read_text().splitlines()
        assert rows[0].startswith("question_id,question,sample,answer,aligned,coherent,misaligned")
        assert len(rows) == 5
        with np.load(art / f"checkpoint_{step}_activations.npz") as z:
            assert z["activations"].shape == (4, 2, 32)
        meta = json.loads((art / f"checkpoint_{step}_activations.json").read_text())
        assert meta["layers"] == [0, 1] and len(meta["aligned"]) == 4
    assert (art / "misaligned_rate.png").stat().st_size > 1000
    directions = json.loads((art / "misalignment_directions.json").read_text())
    assert directions["checkpoints"] == [1] and directions["direction_source"] == "checkpoint"
    # the final checkpoint's answers: a direction, or the counts and why there is none
    assert "file" in directions or directions["result"].startswith("not enough")
    assert directions["n_misaligned_available"] >= 0
    meta = json.loads((art / "training_metadata.json").read_text())
    assert meta["total_steps"] == 1 and meta["checkpoint_steps"] == [0, 1]
    table = [e for e in iter_jsonl(run_dir / "events.jsonl") if e["type"] == "checkpoint"]
    assert [e["step"] for e in table] == [0, 1]
    assert {"misaligned_pct", "aligned", "coherent"} <= set(table[0]["metrics"])

    written = plot_runs([Run(results_dir / persona_id), Run(run_dir)], results_dir.parent / "p")
    assert [p.name for p in written] == ["compare_training_loss.png"]


@pytest.mark.slow
def test_reflection_killed_midway_resumes_without_loss_or_duplicates(lab, results_dir, tiny_dir):
    sets = _sets(
        **TINY, model=str(tiny_dir), dataset="bad-advice", num_examples=16, with_reflection=True,
        reflections_only=True, reflection_max_new_tokens=40, generation_batch_size=1,
        max_generation_batch_size=1,
    )  # fmt: skip
    cmd = [sys.executable, "-m", "labdeck.backend.cli", "run", "--kind", "em", "--quiet", *sets]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=os.environ.copy(), stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    records: Path | None = None
    while time.time() < deadline and proc.poll() is None:
        runs = list_runs(results_dir)
        if runs and (runs[0].path / "records.jsonl").is_file():
            records = runs[0].path / "records.jsonl"
            if len(list(iter_jsonl(records))) >= 3:
                break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert records is not None
    done_before = len(list(iter_jsonl(records)))
    assert 3 <= done_before < 16, "the kill must land mid-way"
    run_dir = records.parent
    assert not (run_dir / "artifacts" / "augmented_dataset.jsonl").exists()

    proc2 = lab("resume", run_dir.name, "--quiet")
    assert proc2.returncode == 0, proc2.stderr
    keys = [r["key"] for r in iter_jsonl(records)]
    assert len(keys) == len(set(keys)) == 16
    indices = sorted(r["index"] for r in iter_jsonl(records))
    assert indices == list(range(16))
    lines = (run_dir / "artifacts" / "augmented_dataset.jsonl").read_text().splitlines()
    assert len(lines) == 16
    # nothing lost: every reflection is what greedy decoding of its prompt gives
    model, tok = load_model(str(tiny_dir), dtype="float32")
    template = DEFAULT_REFLECTION_TEMPLATE.read_text(encoding="utf-8")
    convs = read_chat_jsonl(BUNDLED_DATASETS["bad-advice"], limit=16)
    gen = GenParams(max_new_tokens=40, max_seq_length=256)
    by_index = {r["index"]: r["reflection"] for r in iter_jsonl(records)}
    for i in (0, done_before - 1, done_before, 15):  # both sides of the kill
        expected = generate_batch(model, tok, [reflection_prompt(template, convs[i])], gen)[0]
        assert by_index[i] == expected.text
        assert json.loads(lines[i])["messages"][-1]["content"].endswith(expected.text)


@pytest.mark.slow
def test_steering_layer_sweep_random_control_and_ablation(harness, tiny_dir):
    from labdeck.backend.kinds.em.analysis import ablation_phase, steering_phase
    from labdeck.backend.kinds.em.config import Params
    from labdeck.backend.kinds.em.directions import Direction
    from labdeck.backend.kinds.em.evaluator import Evaluator
    from labdeck.backend.kinds.em.experiment import _lora_spec, _train_spec
    from labdeck.backend.training import LoraTrainer, checkpoint_dirs

    p = Params(
        **TINY, model=str(tiny_dir), judge_model=str(tiny_dir), judge_min_number_mass=0.0,
        num_examples=4, checkpoint_schedule=[0], num_questions=2, samples_per_question=2,
        eval_max_new_tokens=8, generation_batch_size=4, max_generation_batch_size=4,
        steering_alphas=[0.0, 50.0], steering_layers=[0, 1], ablation="all",
    )  # fmt: skip
    h = harness(p.model_dump())
    ctx = h.context(p)
    model, tok = load_model(str(tiny_dir), dtype="float32")
    convs = read_chat_jsonl(BUNDLED_DATASETS["bad-advice"], limit=4)
    trainer = LoraTrainer(model, tok, convs, _train_spec(p), _lora_spec(p), save_steps=[0])
    trainer.run(ctx)
    evaluator = Evaluator(ctx, p, trainer, tok)
    vectors = np.random.default_rng(0).normal(size=(2, 32)).astype(np.float32)
    direction = Direction([0, 1], vectors, 3, 5)
    ckpts = checkpoint_dirs(ctx.checkpoints_dir)
    steering_phase(ctx, p, evaluator, ckpts, direction)
    ablation_phase(ctx, p, evaluator, ckpts, direction)
    unsteered = {(a["question_id"], a["sample"]): a["answer"] for a in evaluator.answers(0)}
    ctx.events.close()
    rows = [r for r in h.records() if r.get("unit") == "steering"]
    points = [(r["intervention"], r["layer"], r["alpha"]) for r in rows]
    assert points == [
        (kind, layer, alpha)
        for layer in (0, 1)
        for alpha in (0.0, 50.0)
        for kind in ("steer-direction", "steer-random")
    ] + [("ablate-all", -1, None)]
    assert all(r["n"] == 4 for r in rows)
    # α = 0 draws exactly the checkpoint's own answers (same per-row seeds)
    zero = rows[0]["answers"]
    assert {(a["question_id"], a["sample"]): a["answer"] for a in zero} == unsteered
    # A tiny random model's next-token distributions are near uniform, so per-row sampling
    # (each row's own generator) can draw the same tokens with and without steering;
    # what steering must change is the model's output.
    import torch

    from labdeck.backend.kinds.em.directions import steering

    ids = tok("Hello there", return_tensors="pt").input_ids
    with torch.no_grad():
        base = evaluator.model(ids).logits
        with steering(evaluator.model, 1, Direction([0, 1], vectors, 3, 5).at(1), 50.0):
            steered = evaluator.model(ids).logits
        again = evaluator.model(ids).logits
    assert not torch.allclose(base, steered) and torch.equal(base, again)
    sweep = (ctx.artifacts_dir / "steering_sweep.csv").read_text().splitlines()
    assert sweep[0].startswith("intervention,layer,alpha,checkpoint") and len(sweep) == 10
    steer = [
        (e["group"], e["level"])
        for e in h.events("metric")
        if e["name"] == "steering_misaligned_rate"
    ]
    assert steer == [("layer 0", 0.0), ("layer 0", 50.0), ("layer 1", 0.0), ("layer 1", 50.0)]
    names = {e["name"] for e in h.events("metric")}
    assert {
        "steering_random_misaligned_rate",
        "ablation_misaligned_rate",
        "ablation_coherent_rate",
    } <= names
