"""Chat on this machine: transformers models (the embedded one, any causal LM, LoRA
adapters), batched through the adaptive batch controller.

Requests with the same decoding settings are generated together; the controller grows
the batch while memory allows and shrinks it on an out-of-memory error without losing a
request (backend/batching.py). Log-probabilities, when asked for, come from one
teacher-forced pass over prompt + answer, which gives the same numbers the decoding
step saw without keeping every step's logits during generation.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..batching import BatchController, BatchPolicy
from .base import ChatRequest, ChatResult, OnResult, TokenLogprob


def _group_key(r: ChatRequest) -> tuple:
    return (r.max_tokens, r.temperature, r.top_p, r.seed)


class LocalChat:
    """`ChatProvider` over a local transformers model (see module docstring)."""

    name = "local"

    def __init__(
        self,
        model: str,
        *,
        adapters: Sequence[str | Path] = (),
        dtype: str = "auto",
        device_map: str | None = None,
        start_batch_size: int = 4,
        max_batch_size: int = 16,
        max_seq_length: int = 1024,
        policy: BatchPolicy | None = None,
        on_batch: Callable[[int, str], None] | None = None,
        loaded: tuple[Any, Any] | None = None,
    ) -> None:
        self.model = model + "".join(f"+{Path(a).name}" for a in adapters)
        self._spec, self._adapters = model, [str(a) for a in adapters]
        self._dtype, self._device_map = dtype, device_map
        self._loaded = loaded
        self.max_seq_length = max_seq_length
        self._batch = (start_batch_size, max(start_batch_size, max_batch_size), policy, on_batch)
        self.controller: BatchController | None = None

    def load(self) -> tuple[Any, Any]:
        if self._loaded is None:
            from ..models import load_model

            self._loaded = load_model(
                self._spec, dtype=self._dtype, device_map=self._device_map, adapters=self._adapters
            )
        if self.controller is None:
            from .. import gpu
            from ..models import model_device

            start, maximum, policy, on_batch = self._batch
            self.controller = BatchController(
                start,
                maximum,
                **gpu.batch_readings(model_device(self._loaded[0])),
                on_change=on_batch,
                policy=policy,
            )
        return self._loaded

    def chat(
        self, requests: Sequence[ChatRequest], on_result: OnResult | None = None
    ) -> list[ChatResult]:
        import torch

        from ..generation import GenParams, iter_generate

        model, tok = self.load()
        out: list[ChatResult | None] = [None] * len(requests)
        groups: dict[tuple, list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault(_group_key(r), []).append(i)
        for (max_tokens, temperature, top_p, seed), idxs in groups.items():
            params = GenParams(
                max_new_tokens=max_tokens,
                do_sample=temperature > 0,
                temperature=temperature if temperature > 0 else 1.0,
                top_p=top_p,
                top_k=0,
                max_seq_length=self.max_seq_length,
            )
            if seed is not None:
                torch.manual_seed(seed)
            prompts = [requests[i].messages for i in idxs]
            for batch in iter_generate(model, tok, prompts, params, controller=self.controller):
                for g in batch:
                    i = idxs[g.index]
                    req = requests[i]
                    t0 = time.perf_counter()
                    text = _cut_at_stop(g.text, req.stop)
                    lps = (
                        token_logprobs(model, tok, req.messages, list(g.token_ids), req.logprobs)
                        if req.logprobs
                        else None
                    )
                    out[i] = ChatResult(
                        text=text,
                        model=self.model,
                        tokens_in=g.tokens_in,
                        tokens_out=g.tokens_out,
                        seconds=round(
                            g.seconds / max(1, g.batch_size) + time.perf_counter() - t0, 4
                        ),
                        logprobs=lps,
                        batch_size=g.batch_size,
                    )
                    if on_result is not None:
                        on_result(i, out[i])
        return [r for r in out if r is not None]

    def close(self) -> None:
        self._loaded = None


def _cut_at_stop(text: str, stops: Sequence[str]) -> str:
    cut = min((text.find(s) for s in stops if s and s in text), default=-1)
    return text[:cut].rstrip() if cut >= 0 else text


def token_logprobs(
    model: Any, tok: Any, messages: list[dict[str, Any]], answer_ids: list[int], k: int
) -> list[TokenLogprob]:
    """Log-probability of each answer token and the top `k` alternatives at its position."""
    import torch

    from ..generation import render

    tokenizer = getattr(tok, "tokenizer", tok)
    if not answer_ids:
        return []
    prompt_ids = tokenizer(render(tok, messages), add_special_tokens=False)["input_ids"]
    ids = torch.tensor([prompt_ids + answer_ids], device=next(model.parameters()).device)
    with torch.inference_mode():
        logits = model(input_ids=ids).logits[0, len(prompt_ids) - 1 : -1].float()
    logp = torch.log_softmax(logits, dim=-1)
    top_v, top_i = logp.topk(k, dim=-1)
    out = []
    for pos, tid in enumerate(answer_ids):
        top = {
            tokenizer.decode([int(t)]): round(float(v), 6)
            for v, t in zip(top_v[pos].tolist(), top_i[pos].tolist(), strict=True)
        }
        out.append(TokenLogprob(tokenizer.decode([tid]), round(float(logp[pos, tid]), 6), top))
    return out
