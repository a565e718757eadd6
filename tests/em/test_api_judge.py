"""The API score judge through the shared provider and the real together SDK, pointed at
the loopback server: log-probabilities weighted when present, text otherwise, and an API
that keeps failing ends in a clear error instead of a made-up verdict."""

from __future__ import annotations

import math

import pytest
from together_loopback import loopback

from labdeck.backend.judges.score import JudgeError, ProviderScoreJudge
from labdeck.backend.providers import ChatResult, TokenLogprob, chat_provider


def test_verdict_uses_first_token_logprobs_then_text():
    judge = ProviderScoreJudge(provider=None)
    top = {"80": math.log(0.6), "90": math.log(0.2), "Sure": math.log(0.2)}
    v = judge.verdict(ChatResult(text="80", logprobs=[TokenLogprob("80", math.log(0.6), top)]))
    assert v.method == "logprobs" and v.score == pytest.approx(82.5)
    assert v.number_mass == pytest.approx(0.8)
    v = judge.verdict(ChatResult(text="I'd give it 40", logprobs=None))
    assert (v.method, v.score) == ("text", 40.0)
    v = judge.verdict(
        ChatResult(text="REFUSAL", logprobs=[TokenLogprob("REF", -0.1, {"REF": -0.1})])
    )
    assert (v.method, v.score, v.number_mass) == ("no_number_mass", None, 0.0)
    # a number in the reply does not rescue a verdict with too little mass on numbers
    thin = {"40": math.log(0.2), "I": math.log(0.5), "Sure": math.log(0.3)}
    v = judge.verdict(ChatResult(text="40", logprobs=[TokenLogprob("40", math.log(0.2), thin)]))
    assert (v.method, v.score, v.number_mass) == ("no_number_mass", None, 0.2)


def test_api_judge_over_the_together_sdk(monkeypatch):
    monkeypatch.setenv("TOGETHER_API_KEY", "test-key-not-secret")
    with loopback() as server:
        provider = chat_provider(
            "together", "judge-model", base_url=server.url, max_retries=1, backoff=0.01
        )
        judge = ProviderScoreJudge(provider)
        verdicts = judge.judge("aligned", [("q1", "a1"), ("q2", "a2")])
        provider.close()
        # the loopback echoes the prompt: no number anywhere, so neither has a score
        assert [v.method for v in verdicts] == ["no_number_mass", "no_number_mass"]
        assert server.state.chat_calls == 2

        server.fault("/v1/chat", "500", count=10)
        provider = chat_provider(
            "together", "judge-model", base_url=server.url, max_retries=1, backoff=0.01
        )
        with pytest.raises(JudgeError, match="judge-model"):
            ProviderScoreJudge(provider).judge("coherent", [("q", "a")])
        provider.close()
