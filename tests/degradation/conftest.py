"""Fixtures for the degradation kind: tiny random models of each family, the real smollm2-135m."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tiny_models import TINY_TEXT, TINY_VISION


def tiny_gemma3_config() -> Any:
    from transformers import Gemma3Config

    return Gemma3Config(
        text_config=dict(TINY_TEXT),
        vision_config=dict(TINY_VISION, num_hidden_layers=1),
        mm_tokens_per_image=4,
    )


def build_tiny(family: str) -> Any:
    """A 2-layer, hidden-32 random model of `family` (seeded, so values are stable)."""
    import torch
    from transformers import (
        Gemma3ForCausalLM,
        Gemma3ForConditionalGeneration,
        Gemma3TextConfig,
        LlamaConfig,
        LlamaForCausalLM,
        Qwen2Config,
        Qwen2ForCausalLM,
    )

    torch.manual_seed(0)
    if family == "llama":
        return LlamaForCausalLM(LlamaConfig(**TINY_TEXT, tie_word_embeddings=True)).eval()
    if family == "qwen2":
        return Qwen2ForCausalLM(Qwen2Config(**TINY_TEXT, tie_word_embeddings=False)).eval()
    if family == "gemma3-text":
        return Gemma3ForCausalLM(Gemma3TextConfig(**TINY_TEXT)).eval()
    if family == "gemma3-image-text":
        return Gemma3ForConditionalGeneration(tiny_gemma3_config()).eval()
    raise ValueError(family)


@pytest.fixture(params=["llama", "qwen2", "gemma3-text", "gemma3-image-text"])
def tiny_model(request: pytest.FixtureRequest) -> tuple[str, Any]:
    return request.param, build_tiny(request.param)


@pytest.fixture(scope="session")
def smollm2() -> tuple[Any, Any]:
    """The real SmolLM2-135M-Instruct (from the labdeck cache; built once if missing)."""
    from labdeck.backend.models import load_model

    return load_model("smollm2-135m")


def write_prompts(path: Path, texts: list[str]) -> Path:
    path.write_text(json.dumps(texts), encoding="utf-8")
    return path


def read_records(run_dir: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for line in (run_dir / "records.jsonl").read_text().splitlines()
        if line.strip()
    ]


def read_events(run_dir: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for line in (run_dir / "events.jsonl").read_text().splitlines()
        if line.strip()
    ]


def only_run(results: Path) -> Path:
    runs = [p for p in results.iterdir() if (p / "config.json").is_file()]
    assert len(runs) == 1, runs
    return runs[0]
