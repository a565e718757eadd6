"""feedback test fixtures: a loopback Together server with the key in the environment."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from feedback_helpers import KEY
from tiny_models import text_config_for
from together_loopback import Loopback, loopback

from labdeck.backend.models import ensure_embedded


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Loopback]:
    monkeypatch.setenv("TOGETHER_API_KEY", KEY)
    with loopback(job_polls=3) as lb:
        yield lb


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer random Llama with the embedded tokenizer (its real chat template)."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    out = tmp_path_factory.mktemp("tiny-llama-feedback")
    tok = AutoTokenizer.from_pretrained(ensure_embedded(), local_files_only=True)
    torch.manual_seed(0)
    config = LlamaConfig(**text_config_for(tok, max_position_embeddings=512))
    LlamaForCausalLM(config).save_pretrained(out)
    tok.save_pretrained(out)
    return out
