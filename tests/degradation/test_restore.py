"""subset_in_memory: restore in place, never reload, ties stay tied."""

from __future__ import annotations

import torch

from labdeck.backend.kinds.degradation.groups import discover_groups
from labdeck.backend.kinds.degradation.methods import degrade
from labdeck.backend.kinds.degradation.restore import SubsetSnapshot
from tests.degradation.conftest import build_tiny


def test_restore_brings_back_exact_weights_in_place_and_keeps_ties():
    model = build_tiny("gemma3-image-text")
    mg = discover_groups(model)
    subset = mg.union(["attention", "embedding"])
    snap = SubsetSnapshot(subset)
    ids = {n: id(p) for n, p in model.named_parameters()}
    ptrs = {n: p.data_ptr() for n, p in subset}
    head = model.get_output_embeddings().weight
    emb = model.get_input_embeddings().weight
    clean_logits = model(input_ids=torch.tensor([[1, 2, 3]])).logits

    for group in ("embedding", "attention"):
        params = mg.groups[group].params
        snap.mark_dirty([n for n, _ in params])
        degrade(params, "mult_gauss", 0.5, seed=1)
        assert not snap.matches()
        if group == "embedding":
            assert head is emb and torch.equal(head, emb), (
                "degrading the embedding degrades the tied head"
            )
        assert snap.restore() == len(params)
        assert snap.matches()

    assert {n: id(p) for n, p in model.named_parameters()} == ids, "no parameter object replaced"
    assert {n: p.data_ptr() for n, p in subset} == ptrs, "restored in place (same storage)"
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    assert torch.equal(model(input_ids=torch.tensor([[1, 2, 3]])).logits, clean_logits)


def test_snapshot_holds_only_the_degradable_subset():
    model = build_tiny("llama")
    mg = discover_groups(model)
    snap = SubsetSnapshot(mg.union(["attention"]))
    assert snap.nbytes == mg.groups["attention"].numel * 4
    assert set(snap.names) == set(mg.groups["attention"].names)
