"""The local provider: real transformers generation, adaptive batches, log-probabilities."""

from __future__ import annotations

from pathlib import Path

from labdeck.backend.providers import ChatRequest, chat_provider


def test_batched_chat_in_order_with_greedy_logprobs(tiny_llama: Path) -> None:
    changes: list[tuple[int, str]] = []
    p = chat_provider(
        "local",
        str(tiny_llama),
        start_batch_size=2,
        max_batch_size=4,
        on_batch=lambda size, reason: changes.append((size, reason)),
    )
    reqs = [
        ChatRequest([{"role": "user", "content": f"say {w}"}], max_tokens=5, logprobs=3)
        for w in ("one", "two", "three", "four", "five")
    ]
    arrived: list[int] = []
    res = p.chat(reqs, on_result=lambda i, r: arrived.append(i))
    assert sorted(arrived) == list(range(5)) and len(res) == 5
    assert changes[0] == (2, "start")
    for r in res:
        assert r.ok and r.tokens_out >= 1 and r.batch_size >= 1
        assert r.logprobs is not None and len(r.logprobs) == r.tokens_out
        for t in r.logprobs:  # greedy decoding picks the most likely token
            assert len(t.top) <= 3
            assert abs(t.logprob - max(t.top.values())) < 1e-4
    alone = p.chat([reqs[3]])[0]
    assert alone.tokens_out == res[3].tokens_out
