"""Sampled text depends on the record's key and seed only, never on its batch."""

from __future__ import annotations

from labdeck.backend.batching import BatchController
from labdeck.backend.generation import GenParams, generate
from labdeck.backend.seeding import set_all_seeds

PROMPTS = [
    "Describe a dream about the sea.",
    "What is the capital of France?",
    "Write one sentence about a cat.",
    "Name a colour and a fruit.",
]
KEYS = [f'["unit",{i}]' for i in range(len(PROMPTS))]
SAMPLE = GenParams(max_new_tokens=6, do_sample=True, temperature=1.3, top_k=40, top_p=0.95)


def _sampled(model, tok, batch: int, seed: int = 11, order=range(4)) -> dict[str, str]:
    order = list(order)
    set_all_seeds(1000 + batch)  # the global RNG must not matter
    gens = generate(
        model,
        tok,
        [PROMPTS[i] for i in order],
        SAMPLE,
        controller=BatchController(batch, batch),
        seed=seed,
        keys=[KEYS[i] for i in order],
    )
    return {KEYS[order[g.index]]: g.text for g in gens}


def test_sampled_text_is_the_same_in_batches_of_4_2_and_1(smol) -> None:
    model, tok = smol
    four = _sampled(model, tok, 4)
    assert _sampled(model, tok, 2) == four  # other batch compositions, other global RNG
    assert _sampled(model, tok, 1) == four
    assert len(set(four.values())) == 4  # each row has its own stream
    assert _sampled(model, tok, 4, seed=12) != four  # and the seed still matters
