"""Sizes of the tiny random models the tests build from configs (no weights downloaded).

One place, so every folder's tiny models are the same shape and stay fast.
"""

from __future__ import annotations

from typing import Any

TINY_TEXT: dict[str, Any] = dict(
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=8,
    vocab_size=128,
)

TINY_VISION: dict[str, Any] = dict(
    hidden_size=32,
    intermediate_size=64,
    num_attention_heads=2,
    image_size=32,
    patch_size=8,
)


def text_config_for(tok: Any, **extra: Any) -> dict[str, Any]:
    """TINY_TEXT sized to a real tokenizer, so the model can read its token ids."""
    return {
        **TINY_TEXT,
        "vocab_size": len(tok),
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
        "pad_token_id": tok.pad_token_id,
        **extra,
    }
