"""Batched chat generation and perplexity on the embedded model and a tiny random one."""

from __future__ import annotations

import random

import pytest
import torch
from pydantic import ValidationError

from labdeck.backend.batching import BatchController
from labdeck.backend.generation import GenParams, generate, iter_generate, perplexity, render
from labdeck.backend.seeding import set_all_seeds

PROMPTS = [
    "What is the capital of France?",
    "Name three primary colors.",
    "Write one sentence about the sea.",
    "Translate 'good morning' into Spanish.",
]
SENTENCE = (
    "The children walked to school in the morning, and their teacher read them a story "
    "about a small dog that found its way home after a long journey through the forest."
)


@pytest.mark.slow
def test_greedy_answers_are_the_same_alone_and_in_a_padded_batch(smol) -> None:
    """Left padding with an attention mask keeps greedy answers identical for this model
    on CPU in float32 (checked for these prompts; see the generation module docstring)."""
    model, tok = smol
    params = GenParams(max_new_tokens=10)
    alone = [generate(model, tok, [p], params)[0] for p in PROMPTS]
    together = generate(model, tok, PROMPTS, params)
    lengths = {g.tokens_in for g in together}
    assert len(lengths) > 1, "prompts of equal length would not exercise padding"
    assert [g.text for g in together] == [g.text for g in alone]
    assert [g.tokens_in for g in together] == [g.tokens_in for g in alone]
    assert [g.batch_size for g in together] == [4] * 4 and [g.batch_size for g in alone] == [1] * 4
    assert [g.index for g in together] == [0, 1, 2, 3]
    assert all(g.text and g.tokens_out > 0 and g.seconds > 0 for g in together)


@pytest.mark.slow
def test_perplexity_of_english_is_lower_than_of_the_same_words_shuffled(smol) -> None:
    model, tok = smol
    words = SENTENCE.split()
    random.Random(0).shuffle(words)
    normal = perplexity(model, tok, SENTENCE)
    shuffled = perplexity(model, tok, " ".join(words))
    assert 1.0 < normal < 100.0
    assert shuffled > 3 * normal


def test_perplexity_in_windows_scores_every_token_once(tiny) -> None:
    model, tok = tiny
    ids = tok(SENTENCE, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        whole = torch.exp(model(input_ids=ids, labels=ids).loss).item()
    assert perplexity(model, tok, SENTENCE) == pytest.approx(whole, rel=1e-4)
    windowed = perplexity(model, tok, SENTENCE, window=8)
    assert windowed == pytest.approx(whole, rel=0.5)  # same tokens scored, shorter context
    with pytest.raises(ValueError, match="at least two tokens"):
        perplexity(model, tok, "")


def test_out_of_memory_inside_generate_shrinks_and_loses_no_prompt(
    tiny, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, tok = tiny
    params = GenParams(max_new_tokens=5)
    expected = generate(model, tok, PROMPTS, params)
    real_generate = model.generate
    attempted: list[int] = []

    def generate_with_small_memory(**kwargs):
        attempted.append(kwargs["input_ids"].shape[0])
        if kwargs["input_ids"].shape[0] > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_generate(**kwargs)

    monkeypatch.setattr(model, "generate", generate_with_small_memory)
    changes: list[tuple[int, str]] = []
    controller = BatchController(4, 4, on_change=lambda s, r: changes.append((s, r)))
    batches = list(iter_generate(model, tok, PROMPTS, params, controller=controller))
    got = [g for b in batches for g in b]
    assert attempted == [4, 2, 2]
    assert changes == [(4, "start"), (2, "oom")]
    assert [g.index for g in got] == [0, 1, 2, 3]
    assert [g.batch_size for g in got] == [2, 2, 2, 2]
    # Random weights make near-ties likely, so compare what padding cannot change.
    assert [g.tokens_in for g in got] == [g.tokens_in for g in expected]


def test_greedy_is_deterministic_and_sampling_follows_the_seed(tiny) -> None:
    model, tok = tiny
    greedy = GenParams(max_new_tokens=8)
    assert [g.text for g in generate(model, tok, PROMPTS, greedy)] == [
        g.text for g in generate(model, tok, PROMPTS, greedy)
    ]
    sample = GenParams(max_new_tokens=8, do_sample=True, temperature=1.5, top_k=0)
    set_all_seeds(7)
    first = [g.text for g in generate(model, tok, PROMPTS, sample)]
    set_all_seeds(7)
    second = [g.text for g in generate(model, tok, PROMPTS, sample)]
    set_all_seeds(8)
    third = [g.text for g in generate(model, tok, PROMPTS, sample)]
    assert first == second and first != third


def test_prompts_are_rendered_with_the_chat_template_and_truncated_from_the_left(tiny) -> None:
    model, tok = tiny
    as_text = render(tok, "Hello there")
    assert as_text == render(tok, [{"role": "user", "content": "Hello there"}])
    assert "Hello there" in as_text and as_text.rstrip().endswith("assistant")
    long_prompt = "Please summarise this. " + "word " * 300
    [g] = generate(model, tok, [long_prompt], GenParams(max_new_tokens=3, max_seq_length=32))
    assert g.tokens_in == 32


def test_gen_params_are_validated_and_only_sampling_passes_sampling_knobs() -> None:
    greedy = GenParams(max_new_tokens=8, temperature=0.7).generate_kwargs()
    assert greedy == {
        "max_new_tokens": 8, "do_sample": False, "temperature": None, "top_k": None, "top_p": None
    }  # fmt: skip
    sampled = GenParams(do_sample=True, temperature=0.7, top_p=0.9).generate_kwargs()
    assert sampled["temperature"] == 0.7 and sampled["top_p"] == 0.9 and sampled["do_sample"]
    with pytest.raises(ValidationError, match="max_new_tokens"):
        GenParams(max_new_tokens=0)
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        GenParams(beams=4)


def test_image_prompts_go_through_the_processor(tiny_llava_dir, tmp_path) -> None:
    from PIL import Image

    from labdeck.backend.models import load_model

    model, processor = load_model(str(tiny_llava_dir), processor=True)
    assert type(model).__name__ == "LlavaForConditionalGeneration"
    assert processor.tokenizer.padding_side == "left"
    path = tmp_path / "red.png"
    Image.new("RGB", (64, 48), (200, 30, 30)).save(path)
    prompts = ["Describe the picture.", "What colour dominates the whole picture here?"]
    params = GenParams(max_new_tokens=4)
    with_image = generate(model, processor, prompts, params, image=str(path))
    text_only = [
        len(processor.tokenizer(render(processor, p), add_special_tokens=False)["input_ids"])
        for p in prompts
    ]
    # 4x4 patches of the 32-pixel view become 16 image positions in each prompt.
    assert [g.tokens_in for g in with_image] == [n + 16 for n in text_only]
    assert all(g.tokens_out > 0 and g.batch_size == 2 for g in with_image)
