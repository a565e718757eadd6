"""Pairwise LM-as-judge: which of two answers is better, asked in both orders.

A judge model prefers whichever answer it sees first (or second) more often than it
should. As in MT-Bench, every pair is judged twice, with the answers swapped; a pair
whose two verdicts disagree is a tie, and the share of pairs whose verdicts agree is
reported as the *position-consistency rate*, a direct measure of that bias.

Scoring: model 2's win rate counts a tie as half a win. Its 95 % interval is a
percentile bootstrap over prompts (resampling whole prompts, so the interval reflects
how much the result depends on which prompts were drawn).

Unreadable verdicts: a prompt whose judge reply gives no verdict in either order is
*unparsed*. As in FastChat's MT-Bench scoring (`fastchat/llm_judge/show_result.py`,
`display_result_pairwise`: matches whose `g1_winner` or `g2_winner` is "error" are
dropped; Zheng et al. 2023, "Judging LLM-as-a-Judge"), it is left out of the win rate,
its interval and the position consistency, and counted as `n_unparsed`: counting it as
a tie would report a judge that never decides as perfectly consistent at 0.5.

API:
    pair_requests(question, answer_1, answer_2, max_tokens=..., logprobs=5)
        -> [ChatRequest (1 as A, 2 as B), ChatRequest (2 as A, 1 as B)]
    parse_verdict(text, logprobs=None) -> (verdict "A"|"B"|"tie" or None, reason)
    combine(v_12, v_21) -> ("model1"|"model2"|"tie"|"unparsed", consistent)
    Tally.of(outcomes, consistent) -> wins/losses/ties/n_unparsed/win_rate/position_consistency
        (win_rate and position_consistency are None with no readable prompt)
    bootstrap_interval(outcomes, samples=1000, seed=0, level=0.95) -> (low, high)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from ..providers import ChatRequest, TokenLogprob

Verdict = Literal["A", "B", "tie"]
Outcome = Literal["model1", "model2", "tie", "unparsed"]
UNPARSED: Outcome = "unparsed"
SCORE: dict[str, float] = {"model2": 1.0, "tie": 0.5, "model1": 0.0}

SYSTEM = (
    "Please act as an impartial judge and evaluate the quality of the responses provided by "
    "two AI assistants to the conversation shown below. Choose the assistant that follows "
    "the user's instructions and answers the user's question better, considering "
    "helpfulness, relevance, accuracy, depth and level of detail. Do not let the order in "
    "which the responses are presented, their length, or the assistants' names influence "
    "your decision. Be as objective as possible."
)
TEMPLATE = """[Conversation]
{question}
[End of Conversation]

[Answer A]
{answer_a}
[End of Answer A]

[Answer B]
{answer_b}
[End of Answer B]

Reply in exactly this format:
Verdict: A, B or tie
Reason: one or two sentences"""


def render_question(messages: Sequence[dict[str, Any]]) -> str:
    return "\n".join(f"{m['role'].upper()}: {m['content']}" for m in messages)


def pair_requests(
    question: Sequence[dict[str, Any]],
    answer_1: str,
    answer_2: str,
    *,
    max_tokens: int = 128,
    logprobs: int = 5,
    template: str = TEMPLATE,
    system: str = SYSTEM,
) -> list[ChatRequest]:
    """The two judge requests for one prompt: model 1 first, then model 2 first."""
    q = render_question(question)
    out = []
    for a, b in ((answer_1, answer_2), (answer_2, answer_1)):
        text = template.format(question=q, answer_a=a, answer_b=b)
        out.append(
            ChatRequest(
                [{"role": "system", "content": system}, {"role": "user", "content": text}],
                max_tokens=max_tokens,
                temperature=0.0,
                logprobs=logprobs,
            )
        )
    return out


_PATTERNS = (
    re.compile(r"verdict\s*[:\-]?\s*\**\s*\[*\s*(A|B|tie|C)\b", re.IGNORECASE),
    re.compile(r"\[\[\s*(A|B|C|tie)\s*\]\]", re.IGNORECASE),
    re.compile(r"^\W*(A|B|tie)\b", re.IGNORECASE),
)
_REASON = re.compile(r"reason\s*[:\-]\s*(.*)", re.IGNORECASE | re.DOTALL)


def _norm(token: str) -> Verdict | None:
    t = token.strip().strip("[]*.:").lower()
    return {"a": "A", "b": "B", "tie": "tie", "c": "tie"}.get(t)  # type: ignore[return-value]


def parse_verdict(
    text: str, logprobs: Sequence[TokenLogprob] | None = None
) -> tuple[Verdict | None, str]:
    """The verdict in a judge's reply, and its reason.

    When the text has no readable verdict, the judge's first-token alternatives decide
    among A, B and tie (the most likely of those it considered); None if neither works.
    """
    m_reason = _REASON.search(text)
    reason = (m_reason.group(1) if m_reason else text).strip()
    for pattern in _PATTERNS:
        m = pattern.search(text)
        if m:
            return _norm(m.group(1)), reason
    if logprobs:
        for tok in logprobs[:3]:
            options = [(lp, _norm(t)) for t, lp in tok.top.items() if _norm(t)]
            if options:
                return max(options, key=lambda o: o[0])[1], reason or "(from token probabilities)"
    return None, reason


def combine(v_12: Verdict | None, v_21: Verdict | None) -> tuple[Outcome, bool]:
    """Outcome of one prompt from its two verdicts (1 shown as A, then 2 shown as A).

    Orders that disagree make a tie. An unreadable verdict in either order makes the
    prompt "unparsed" (not consistent, not a tie: it is left out of every figure).
    """
    if v_12 is None or v_21 is None:
        return UNPARSED, False
    first: Outcome = {"A": "model1", "B": "model2"}.get(v_12, "tie")  # type: ignore[assignment]
    second: Outcome = {"A": "model2", "B": "model1"}.get(v_21, "tie")  # type: ignore[assignment]
    if first == second:
        return first, True
    return "tie", False


@dataclass(frozen=True)
class Tally:
    """Counts from model 2's side: a win is a prompt where model 2's answer was preferred.

    `n` counts the readable prompts only; `n_unparsed` the prompts left out.
    """

    n: int
    wins: int
    losses: int
    ties: int
    consistent: int
    n_unparsed: int = 0

    @classmethod
    def of(cls, outcomes: Sequence[str], consistent: Sequence[bool]) -> Tally:
        read = [(o, c) for o, c in zip(outcomes, consistent, strict=True) if o != UNPARSED]
        return cls(
            n=len(read),
            wins=sum(o == "model2" for o, _ in read),
            losses=sum(o == "model1" for o, _ in read),
            ties=sum(o == "tie" for o, _ in read),
            consistent=sum(bool(c) for _, c in read),
            n_unparsed=len(outcomes) - len(read),
        )

    @property
    def unparsed_share(self) -> float:
        total = self.n + self.n_unparsed
        return self.n_unparsed / total if total else 0.0

    @property
    def win_rate(self) -> float | None:
        """None when no prompt was readable: there is no rate to report."""
        return (self.wins + 0.5 * self.ties) / self.n if self.n else None

    @property
    def position_consistency(self) -> float | None:
        return self.consistent / self.n if self.n else None

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "win_rate": self.win_rate,
            "position_consistency": self.position_consistency,
        }


def bootstrap_interval(
    outcomes: Sequence[str], samples: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float] | tuple[None, None]:
    """Percentile bootstrap interval of the win rate (ties as half), resampling the
    readable prompts ((None, None) when there is none).

    A resample of n prompts is fully described by how many wins, ties and losses it
    drew, a multinomial draw with the observed shares, so each resample costs O(1)
    instead of O(n): the live tally can recompute the interval after every prompt.
    """
    import numpy as np

    outcomes = [o for o in outcomes if o != UNPARSED]
    n = len(outcomes)
    if n == 0:
        return None, None
    shares = [sum(o == k for o in outcomes) / n for k in ("model2", "tie", "model1")]
    counts = np.random.default_rng(seed).multinomial(n, shares, size=samples)
    means = np.sort((counts[:, 0] + 0.5 * counts[:, 1]) / n)
    lo_i = int((1 - level) / 2 * samples)
    hi_i = max(lo_i, min(samples - 1, int((1 + level) / 2 * samples) - 1))
    return float(means[lo_i]), float(means[hi_i])
