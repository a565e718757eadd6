"""Per-level text metrics on texts whose values can be worked out by hand."""

from __future__ import annotations

import pytest

from labdeck.backend.kinds.degradation.metrics import (
    distinct_n,
    level_metrics,
    mattr,
    repetition_rate,
)


def test_distinct_2_pools_bigrams_over_outputs():
    assert distinct_n(["a b c", "a b d"], 2) == pytest.approx(3 / 4)
    assert distinct_n(["x"], 2) == 0.0


def test_mattr_uses_a_moving_window():
    assert mattr("the cat sat") == 1.0
    assert mattr("a a a a") == 0.25
    text = " ".join([f"w{i}" for i in range(50)] + ["w0"] * 10)
    assert mattr(text, window=50) < 1.0
    assert mattr(" ".join(f"w{i}" for i in range(200)), window=50) == 1.0


def test_repetition_rate_flags_loops():
    assert repetition_rate("one two three four five") == 0.0
    loop = " ".join(["I can see it now."] * 5)
    assert repetition_rate(loop) > 0.7


def test_level_metrics_bundle():
    m = level_metrics(["a b c", "a b c"], [3, 5])
    assert m["mean_tokens_out"] == 4.0
    assert m["distinct_2"] == pytest.approx(2 / 4)
    assert set(m) == {"mean_tokens_out", "distinct_2", "mattr", "repetition_rate"}
