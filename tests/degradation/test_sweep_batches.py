"""A sweep through the runner in this process: the record contract, per-level metric
events, the seed-json export, and an injected out-of-memory error at batch 8."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import torch

from labdeck.backend import cli
from labdeck.backend.kinds.degradation import sweep as sweep_mod
from tests.degradation.conftest import only_run, read_events, read_records, write_prompts

pytestmark = pytest.mark.slow

SEED_FIELDS = {
    "timestamp", "model_name", "prompt_group", "prompt_id", "prompt_text", "output", "std_dev",
    "repeat_index", "temperature", "do_sample", "param_group_name", "seed", "duration", "tokens",
    "degradation_method", "usar_4bit",
}  # fmt: skip
NEW_FIELDS = {
    "experiment_id", "config_name", "model_variant", "tokens_in", "tokens_out", "level_value",
    "level_index", "batch_size_effective", "device", "dtype", "load_4bit", "restore_strategy",
    "gen_params", "image_used", "image_filename", "vram_usage_percent",
}  # fmt: skip


def _run(results: Path, *sets: str) -> int:
    argv = ["run", "--kind", "degradation", "--title", "t", "--quiet", "--results", str(results)]
    for s in ("model=smollm2-135m", "cpu_threads=1", "generation.do_sample=false", *sets):
        argv += ["--set", s]
    return cli.main(argv)


def test_records_metrics_and_seed_json(results_dir, tmp_path):
    prompts = write_prompts(tmp_path / "p.json", ["Name a fruit.", "Name a colour.", "Say hello."])
    rc = _run(
        results_dir,
        f"prompts.set={json.dumps(str(prompts))}",
        'param_groups=["attention"]',
        "levels=[0.0, 0.2]",
        "generation.max_new_tokens=6",
        "compute_perplexity=true",
        'name_suffix="unit"',
    )
    assert rc == 0
    run_dir = only_run(results_dir)
    recs = read_records(run_dir)
    assert len(recs) == 6
    for r in recs:
        assert SEED_FIELDS | NEW_FIELDS | {"perplexity"} <= set(r), SEED_FIELDS | NEW_FIELDS - set(
            r
        )
        assert r["tokens"] == r["tokens_out"] and r["std_dev"] == r["level_value"]
        assert (
            r["restore_strategy"] == "subset_in_memory"
            and r["experiment_id"] == "mult_gauss|smollm2-135m|unit"
        )
        assert r["gen_params"]["max_new_tokens"] == 6 and r["prompt_group"] == "p"
    by_level = {r["level_value"]: r["perplexity"] for r in recs}
    assert by_level[0.2] > by_level[0.0]

    metrics = [e for e in read_events(run_dir) if e["type"] == "metric"]
    seen = {(e["name"], e["level"], e["group"]) for e in metrics}
    for name in ("perplexity", "mean_tokens_out", "distinct_2", "mattr", "repetition_rate"):
        assert {(name, 0.0, "attention"), (name, 0.2, "attention")} <= seen
    assert len(seen) == len(metrics), "each per-level metric is emitted once"
    assert (run_dir / "artifacts" / "level_metrics.csv").is_file()

    assert (
        cli.main(["export", run_dir.name, "--format", "seed-json", "--results", str(results_dir)])
        == 0
    )
    out = run_dir / "artifacts" / "outputs_mult_gauss_smollm2-135m_unit.json"
    data = json.loads(out.read_text())
    assert [d["output"] for d in data] == [r["output"] for r in recs]
    assert "key" not in data[0]

    assert cli.main(["plot", run_dir.name, "--results", str(results_dir)]) == 0
    assert list((run_dir / "artifacts").glob("*.png"))


def test_injected_oom_at_batch_8_loses_nothing(results_dir, tmp_path, monkeypatch):
    texts = [f"Give one word that rhymes with number {i}." for i in range(10)]
    prompts = write_prompts(tmp_path / "ten.json", texts)
    real = sweep_mod.generate_batch
    attempts: list[int] = []

    def flaky(model, tok, batch, params, **kw):
        attempts.append(len(batch))
        if len(batch) == 8:
            raise torch.OutOfMemoryError(
                "CUDA out of memory. Tried to allocate 2.00 GiB (injected)"
            )
        return real(model, tok, batch, params, **kw)

    monkeypatch.setattr(sweep_mod, "generate_batch", flaky)
    # memory always "low": the controller would grow, but never back into a size that failed
    monkeypatch.setattr(sweep_mod, "memory_fraction_probe", lambda device: lambda: 0.1)
    rc = _run(
        results_dir,
        f"prompts.set={json.dumps(str(prompts))}",
        'param_groups=["mlp"]',
        "levels=[0.0, 0.1]",
        "max_batch_size=8",
        "generation.max_new_tokens=3",
    )
    assert rc == 0
    run_dir = only_run(results_dir)
    recs = read_records(run_dir)
    assert len(recs) == 20 and len({r["key"] for r in recs}) == 20
    assert {(r["level_value"], r["prompt_text"]) for r in recs} == {
        (lv, t) for lv in (0.0, 0.1) for t in texts
    }
    assert attempts[0] == 8 and attempts[1] < 8, "the failed batch is retried smaller"
    assert 8 not in attempts[1:], "a size that ran out of memory is never tried again"

    batch_events = [e for e in read_events(run_dir) if e["type"] == "batch"]
    assert batch_events[0]["size"] == 8 and batch_events[0]["reason"] == "start"
    assert any(e["reason"] == "oom" and e["size"] < 8 for e in batch_events)
    sizes = [r["batch_size_effective"] for r in recs]
    assert max(sizes) < 8
    changes = [b for a, b in itertools.pairwise(sizes) if a != b]
    event_sizes = [e["size"] for e in batch_events[1:]]
    it = iter(event_sizes)
    assert all(any(s == c for s in it) for c in [sizes[0], *changes]), (sizes, event_sizes)


def test_image_prompts_on_a_text_only_model_fail_with_the_fix(results_dir):
    rc = _run(results_dir, "image.enabled=true", "levels=[0.0]", "prompts.limit=1")
    assert rc == 1
    state = json.loads((only_run(results_dir) / "state.json").read_text())
    assert state["status"] == "failed"
    assert "image.enabled: model 'smollm2-135m' has no vision part" in state["last_error"]
