"""On the real smollm2-135m, perplexity rises with the mult_gauss level, and restore undoes it."""

from __future__ import annotations

import pytest

from labdeck.backend.generation import perplexity
from labdeck.backend.kinds.degradation.groups import discover_groups
from labdeck.backend.kinds.degradation.methods import degrade
from labdeck.backend.kinds.degradation.promptsets import shipped_perplexity_text
from labdeck.backend.kinds.degradation.restore import SubsetSnapshot

pytestmark = pytest.mark.slow


def test_perplexity_rises_monotonically_with_mult_gauss_level(smollm2):
    model, tok = smollm2
    text = shipped_perplexity_text()
    mg = discover_groups(model)
    params = mg.groups["all"].params
    snap = SubsetSnapshot(params)
    ppl = {}
    for level in (0.0, 0.1, 0.3):
        snap.restore()
        if level:
            snap.mark_dirty([n for n, _ in params])
            degrade(params, "mult_gauss", level, seed=42)
        ppl[level] = perplexity(model, tok, text)
    snap.restore()
    clean_again = perplexity(model, tok, text)
    print("perplexity by level:", ppl)
    assert 3 < ppl[0.0] < 60, "a real instruction model reads plain prose at a low perplexity"
    assert ppl[0.0] < ppl[0.1] < ppl[0.3]
    assert ppl[0.3] > 1.5 * ppl[0.0]
    assert clean_again == pytest.approx(ppl[0.0], rel=1e-6)
