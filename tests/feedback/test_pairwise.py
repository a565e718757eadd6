"""Pairwise judge logic: both orders, ties on disagreement, tally and bootstrap interval."""

from __future__ import annotations

import pytest

from labdeck.backend.judges.pairwise import (
    Tally,
    bootstrap_interval,
    combine,
    pair_requests,
    parse_verdict,
)
from labdeck.backend.providers import TokenLogprob


def test_orders_that_agree_decide_and_orders_that_disagree_tie() -> None:
    # first order shows model 1 as A; the second shows model 2 as A
    assert combine("B", "A") == ("model2", True)
    assert combine("A", "B") == ("model1", True)
    assert combine("tie", "tie") == ("tie", True)
    assert combine("A", "A") == ("tie", False)  # always the first position: bias, not skill
    assert combine("B", "B") == ("tie", False)
    assert combine("B", "tie") == ("tie", False)
    assert combine(None, "A") == ("unparsed", False)  # not a tie: left out of every figure
    assert combine("B", None) == ("unparsed", False)


def test_requests_swap_the_answers() -> None:
    q = [{"role": "user", "content": "Which is bigger, 2 or 3?"}]
    r12, r21 = pair_requests(q, "ANSWER-ONE", "ANSWER-TWO")
    t12, t21 = r12.messages[-1]["content"], r21.messages[-1]["content"]
    assert t12.index("ANSWER-ONE") < t12.index("ANSWER-TWO")
    assert t21.index("ANSWER-TWO") < t21.index("ANSWER-ONE")
    assert "USER: Which is bigger" in t12 and r12.temperature == 0.0


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        ("Verdict: A\nReason: clearer.", "A"),
        ("verdict - b. Reason: more detail", "B"),
        ("Verdict: tie\nReason: same", "tie"),
        ("After thought, [[C]]", "tie"),
        ("[[B]] is better", "B"),
        ("B is better because", "B"),
        ("I cannot decide", None),
    ],
)
def test_parse_verdict(text: str, verdict: str | None) -> None:
    assert parse_verdict(text)[0] == verdict


def test_unreadable_text_falls_back_to_first_token_probabilities() -> None:
    lps = [TokenLogprob("I", -0.1, {"I": -0.1, " B": -1.2, "A": -2.5})]
    assert parse_verdict("I think so", lps) == ("B", "I think so")


def test_tally_and_bootstrap_on_a_fixed_tally() -> None:
    outcomes = ["model2"] * 12 + ["model1"] * 4 + ["tie"] * 4
    consistent = [True] * 16 + [False] * 4
    t = Tally.of(outcomes, consistent)
    assert (t.wins, t.losses, t.ties, t.n) == (12, 4, 4, 20)
    assert t.win_rate == pytest.approx(0.7) and t.position_consistency == pytest.approx(0.8)
    lo, hi = bootstrap_interval(outcomes, samples=2000, seed=1)
    # normal approximation: sd of the per-prompt scores / sqrt(n) = 0.4 / sqrt(20) ~ 0.089
    assert lo < 0.7 < hi
    assert lo == pytest.approx(0.7 - 1.96 * 0.0894, abs=0.04)
    assert hi == pytest.approx(0.7 + 1.96 * 0.0894, abs=0.04)
    assert bootstrap_interval(outcomes, samples=2000, seed=1) == (lo, hi)  # seeded
    assert bootstrap_interval(["tie"] * 5) == (0.5, 0.5)
    wide = bootstrap_interval(outcomes[:5] + outcomes[-5:], samples=2000, seed=1)
    assert wide[1] - wide[0] > hi - lo  # fewer prompts, wider interval


def test_unreadable_verdicts_are_counted_and_left_out_of_every_figure() -> None:
    """Hand-made verdict pairs (model 1 shown as A first, then model 2 shown as A)."""
    pairs = (
        [("B", "A")] * 6  # model 2 preferred in both orders
        + [("A", "B")] * 2  # model 1 preferred in both orders
        + [("A", "A")] * 2  # always the first answer: a tie, inconsistent
        + [(None, "A"), ("B", None), (None, None)]  # no verdict in one order or both
    )
    outcomes, consistent = zip(*(combine(a, b) for a, b in pairs), strict=True)
    t = Tally.of(outcomes, consistent)
    assert (t.n, t.wins, t.losses, t.ties, t.n_unparsed) == (10, 6, 2, 2, 3)
    assert t.win_rate == pytest.approx(7 / 10)  # (6 + 2 * 0.5) / 10 readable prompts
    assert t.position_consistency == pytest.approx(8 / 10)
    assert t.unparsed_share == pytest.approx(3 / 13)
    readable = [o for o in outcomes if o != "unparsed"]
    assert bootstrap_interval(outcomes, seed=3) == bootstrap_interval(readable, seed=3)
    never = Tally.of(["unparsed"] * 10, [False] * 10)
    assert never.win_rate is None and never.position_consistency is None
    assert never.n_unparsed == 10 and never.unparsed_share == 1.0
    assert bootstrap_interval(["unparsed"] * 3) == (None, None)
