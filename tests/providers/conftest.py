"""Provider test fixtures: a tiny random Llama with the embedded tokenizer, one thread."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tiny_models import text_config_for

from labdeck.backend.models import ensure_embedded


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    out = tmp_path_factory.mktemp("tiny-llama-providers")
    tok = AutoTokenizer.from_pretrained(ensure_embedded(), local_files_only=True)
    torch.manual_seed(0)
    LlamaForCausalLM(
        LlamaConfig(**text_config_for(tok, max_position_embeddings=512))
    ).save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
