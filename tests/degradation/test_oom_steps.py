"""Out-of-memory errors outside generation: the degradation step and perplexity windows."""

from __future__ import annotations

import json

import pytest
import torch

from labdeck.backend import cli
from labdeck.backend.generation import perplexity
from labdeck.backend.kinds.degradation import sweep as sweep_mod
from labdeck.backend.kinds.degradation.groups import discover_groups
from labdeck.backend.kinds.degradation.restore import SubsetSnapshot
from tests.degradation.conftest import only_run, read_events, read_records, write_prompts

TEXT = "The river ran past the old mill, and the children watched the boats drift by. " * 3


def test_an_oom_while_degrading_is_retried_and_the_sweep_completes(
    results_dir, tmp_path, monkeypatch, smollm2
):
    prompts = write_prompts(tmp_path / "p.json", ["Name a fruit."])
    real = sweep_mod.degrade
    calls: list[float] = []

    def degrade_once_out_of_memory(params, method, level, seed, mode):
        calls.append(level)
        if len(calls) == 1:
            params[0][1].data.mul_(7.0)  # half-done damage the retry must not keep
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")
        return real(params, method, level, seed, mode)

    monkeypatch.setattr(sweep_mod, "degrade", degrade_once_out_of_memory)
    argv = ["run", "--kind", "degradation", "--title", "t", "--quiet"]
    sets = [
        "model=smollm2-135m", "cpu_threads=1", "generation.do_sample=false",
        f"prompts.set={json.dumps(str(prompts))}", 'param_groups=["mlp"]', "levels=[0.1]",
        "generation.max_new_tokens=2", "compute_perplexity=true", "memory.pause_seconds=0",
        f"perplexity_text={json.dumps(TEXT)}",
    ]  # fmt: skip
    for s in sets:
        argv += ["--set", s]
    assert cli.main([*argv, "--results", str(results_dir)]) == 0
    run_dir = only_run(results_dir)
    assert calls == [0.1, 0.1]
    recs = read_records(run_dir)
    assert len(recs) == 1 and recs[0]["perplexity"] > 1
    assert any(e["type"] == "batch" and e["reason"] == "pause" for e in read_events(run_dir))

    # the retried level equals the same degradation done once, without the damage
    model, tok = smollm2
    params = discover_groups(model).groups["mlp"].params
    snap = SubsetSnapshot(params)
    snap.mark_dirty([n for n, _ in params])
    real(params, "mult_gauss", 0.1, 42, "step")
    try:
        expected = perplexity(model, tok, TEXT)
    finally:
        snap.restore()
    assert recs[0]["perplexity"] == pytest.approx(expected, rel=1e-5)
