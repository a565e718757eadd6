"""Image prompts in batches: a real Gemma 3 processor and model, and the prompt limit."""

from __future__ import annotations

from pathlib import Path

import pytest

from labdeck.backend.generation import GenParams, generate, render
from labdeck.backend.models import load_model

PROMPTS = [
    "Describe the picture.",
    "What colour dominates the whole picture here?",
    "Tell a story about this picture: " + "and then it went on " * 60,
]


@pytest.fixture
def red_png(tmp_path: Path) -> Path:
    from PIL import Image

    path = tmp_path / "red.png"
    Image.new("RGB", (64, 48), (200, 30, 30)).save(path)
    return path


def test_gemma3_answers_a_batch_of_three_image_prompts(tiny_gemma3_dir, red_png) -> None:
    model, processor = load_model(str(tiny_gemma3_dir), processor=True)
    assert type(processor).__name__ == "Gemma3Processor"
    assert type(model).__name__ == "Gemma3ForConditionalGeneration"
    limit = 64
    gens = generate(
        model, processor, PROMPTS, GenParams(max_new_tokens=3, max_seq_length=limit), image=red_png
    )
    assert [g.batch_size for g in gens] == [3, 3, 3]
    assert all(g.tokens_out > 0 for g in gens)
    tok = processor.tokenizer
    text_only = [
        len(tok(render(processor, p), add_special_tokens=False)["input_ids"]) for p in PROMPTS
    ]
    # The image is 4 soft tokens between its begin/end tokens and blank lines; the short
    # prompts keep all their text, the long one is cut to the limit, image intact.
    assert gens[0].tokens_in > text_only[0] + 4 and gens[1].tokens_in > text_only[1] + 4
    assert text_only[2] > limit and gens[2].tokens_in <= limit


def test_llava_still_answers_a_batch_with_the_prompt_limit(tiny_llava_dir, red_png) -> None:
    model, processor = load_model(str(tiny_llava_dir), processor=True)
    gens = generate(
        model, processor, PROMPTS, GenParams(max_new_tokens=3, max_seq_length=48), image=red_png
    )
    assert [g.batch_size for g in gens] == [3, 3, 3] and all(g.tokens_out > 0 for g in gens)
    assert gens[2].tokens_in <= 48 and gens[0].tokens_in < 48
