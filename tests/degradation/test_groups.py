"""Parameter groups are found from the model's structure, for every decoder family."""

from __future__ import annotations

import pytest

from labdeck.backend.errors import UserError
from labdeck.backend.kinds.degradation.groups import discover_groups


def test_groups_cover_every_layer_and_skip_norms(tiny_model):
    family, model = tiny_model
    mg = discover_groups(model)
    assert mg.n_layers == 2
    attn, mlp = mg.groups["attention"].names, mg.groups["mlp"].names
    assert attn and mlp
    for i in range(2):
        assert any(f"layers.{i}.self_attn.q_proj.weight" in n for n in attn)
        assert any(f"layers.{i}.mlp.down_proj.weight" in n for n in mlp)
    everything = attn + mlp + mg.groups["embedding"].names
    assert not [n for n in everything if "norm" in n], "norm weights must never be degraded"
    assert sorted(mg.groups["all"].names) == sorted(set(everything))
    # every name is the model's own full parameter name
    names = dict(model.named_parameters())
    assert all(n in names for n in everything)
    if family == "qwen2":  # q/k/v biases belong to attention
        assert any(n.endswith("q_proj.bias") for n in attn)


def test_image_text_model_only_touches_the_language_model():
    from tests.degradation.conftest import build_tiny

    model = build_tiny("gemma3-image-text")
    mg = discover_groups(model)
    assert mg.layers_path == "model.language_model.layers"
    touched = mg.groups["all"].names
    assert touched and all(n.startswith("model.language_model.") for n in touched)
    assert mg.tied_embeddings
    (emb,) = mg.groups["embedding"].params
    assert emb[1] is model.get_output_embeddings().weight
    assert any("tied" in note and "lm_head" in note for note in mg.groups["embedding"].notes)


def test_untied_head_is_part_of_embedding_group():
    from tests.degradation.conftest import build_tiny

    model = build_tiny("qwen2")
    mg = discover_groups(model)
    assert not mg.tied_embeddings
    assert mg.groups["embedding"].names == ["model.embed_tokens.weight", "lm_head.weight"]


def test_layer_range_restricts_attention_and_mlp():
    from tests.degradation.conftest import build_tiny

    model = build_tiny("llama")
    mg = discover_groups(model, layer_start=1, layer_end=1)
    assert mg.layer_range == (1, 1)
    for name in ("attention", "mlp"):
        assert all(".layers.1." in n for n in mg.groups[name].names)
    full = discover_groups(model)
    assert mg.groups["attention"].numel * 2 == full.groups["attention"].numel


def test_layer_range_beyond_model_is_a_clear_error():
    from tests.degradation.conftest import build_tiny

    with pytest.raises(
        UserError, match=r"layer_end: 5 is beyond the model's 2 decoder layers \(0..1\)"
    ):
        discover_groups(build_tiny("llama"), layer_end=5)
    with pytest.raises(UserError, match="layer_start: 2"):
        discover_groups(build_tiny("llama"), layer_start=2)
