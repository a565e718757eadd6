"""LoRA parity with the two reference setups: adapters only where `lora_layers` and the
target modules put them, rsLoRA scaling, and both setups as presets."""

from __future__ import annotations

import tomllib
from pathlib import Path

from labdeck.backend.kinds.em.config import Params
from labdeck.backend.kinds.em.experiment import _lora_spec
from labdeck.backend.models import load_model

PRESETS = Path(__file__).resolve().parents[2] / "presets"


def _preset(name: str) -> Params:
    with open(PRESETS / name, "rb") as fh:
        return Params(**tomllib.load(fh)["params"])


def _scaling(layer) -> float:
    s = layer.scaling
    return float(s["default"] if isinstance(s, dict) else s)


def test_adapters_only_on_the_chosen_layers_and_modules(tiny_dir):
    from peft import get_peft_model

    model, _ = load_model(str(tiny_dir), dtype="float32")
    p = Params(lora_rank=1, lora_alpha=512.0, target_modules=["down_proj"], lora_layers=[1],
               use_rslora=False)  # fmt: skip
    peft_model = get_peft_model(model, _lora_spec(p).peft_config())
    adapted = sorted(n for n, _ in peft_model.named_modules() if n.endswith("lora_A.default"))
    assert len(adapted) == 1 and ".layers.1.mlp.down_proj." in adapted[0]
    layer = peft_model.get_submodule(adapted[0].rsplit(".lora_A", 1)[0])
    assert _scaling(layer) == 512.0  # alpha / r with r = 1
    rs = get_peft_model(load_model(str(tiny_dir), dtype="float32")[0], _lora_spec(
        Params(lora_rank=4, lora_alpha=64.0, use_rslora=True)).peft_config())  # fmt: skip
    scaled = {_scaling(m) for m in rs.modules() if hasattr(m, "lora_A")}
    assert scaled == {64.0 / 2}  # rsLoRA: alpha / sqrt(r)


def test_both_reference_setups_are_presets():
    wide = _preset("em-qwen7b-medical.toml")
    assert (wide.lora_rank, wide.lora_alpha, wide.use_rslora, wide.learning_rate, wide.epochs) == (
        32, 64.0, True, 1e-5, 1,
    )  # fmt: skip
    assert len(wide.target_modules) == 7 and wide.lora_layers == []
    narrow = _preset("em-qwen14b-rank1-medical.toml")
    assert (narrow.lora_rank, narrow.lora_alpha, narrow.learning_rate) == (1, 512.0, 2e-5)
    assert narrow.target_modules == ["down_proj"] and len(narrow.lora_layers) == 1
    for p in (wide, narrow):  # the reference's sampling
        assert (p.samples_per_question, p.eval_temperature, p.eval_top_p) == (50, 1.0, 1.0)
        assert p.eval_max_new_tokens == 600 and p.questions == "em-first-plot"
