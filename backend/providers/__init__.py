"""Model providers: chat generation (batched, optional log-probabilities) and fine-tuning
jobs, on this machine or over an API, behind one small interface shared by every kind.

API (stable; `feedback` and `em` depend on it):

    ChatRequest(messages, max_tokens=256, temperature=0.0, top_p=1.0, seed=None,
                logprobs=0, stop=(), model=None)
        `logprobs=k`: the top-k alternatives per generated token (0: none).
    ChatResult(text, model, tokens_in, tokens_out, seconds, attempts, logprobs, error,
               status, batch_size)          `.ok` is `error is None`
        `logprobs`: list[TokenLogprob(token, logprob, top={token: logprob})] or None.
    ChatProvider.chat(requests, on_result=None) -> list[ChatResult]
        One result per request, in request order. A request that finally fails is a
        result with `error` (naming the model and the status) and `status`; it never
        raises and never loses the rest of the batch. `on_result(index, result)` runs
        in the caller's thread as each result arrives, so the caller can record it
        at once.
    ChatProvider.close()

    chat_provider(kind, model, **options) -> ChatProvider
        kind "local": LocalChat(model, adapters=(), dtype="auto", device_map=None,
            start_batch_size=4, max_batch_size=16, max_seq_length=1024, policy=None,
            on_batch=None, loaded=None): transformers, adaptive batches.
        kind "together": TogetherChat(model, base_url=None, concurrency=8, delay=0.0,
            requests_per_minute=0.0, max_retries=6, backoff=1.0, timeout=120.0,
            seed=None, stats=None, openai_logprobs=None): the together SDK; any
            OpenAI-compatible server via `base_url` (log-probabilities asked the OpenAI
            way, `logprobs: true` + `top_logprobs`, unless the URL is Together's). Starts are spaced by max(delay, 60/requests_per_minute); 429,
            408, 409, 5xx, timeouts and dropped connections are retried with
            exponential backoff and jitter, honouring Retry-After for all workers.
            `.stats` (ApiStats) counts requests, retries, failures, last status and
            requests per minute (`.snapshot()`).

    FineTuneProvider (TogetherFineTune(base_url=None, max_retries=6, ...)):
        upload(path) -> file id             (the SDK's file checker runs first)
        create(JobSpec, since=None) -> JobInfo
            never creates twice: after an unknown outcome it adopts the job found on
            the same training file (created since `since`).
        find_job(training_file, since=None) -> JobInfo | None   (re-attach on resume)
        retrieve(id) -> JobInfo             (.finished, .status, .output_name, .message)
        list_jobs() -> list[JobInfo];  events(id) -> list[JobEvent]
        losses(id) -> [(step, loss)];  cancel(id) -> JobInfo

The key is read from TOGETHER_API_KEY only and never written. Local fine-tuning is not a
provider: it is the one LoRA trainer, backend/training.py.
"""

from __future__ import annotations

from typing import Any

from ..errors import UserError
from .base import (
    ChatProvider,
    ChatRequest,
    ChatResult,
    FineTuneProvider,
    JobEvent,
    JobInfo,
    JobSpec,
    ProviderAuthError,
    ProviderError,
    TokenLogprob,
)
from .ratelimit import ApiStats, RateLimiter, RetryPolicy

PROVIDERS = ("local", "together")

__all__ = [
    "PROVIDERS",
    "ApiStats",
    "ChatProvider",
    "ChatRequest",
    "ChatResult",
    "FineTuneProvider",
    "JobEvent",
    "JobInfo",
    "JobSpec",
    "ProviderAuthError",
    "ProviderError",
    "RateLimiter",
    "RetryPolicy",
    "TokenLogprob",
    "chat_provider",
]


def chat_provider(kind: str, model: str, **options: Any) -> ChatProvider:
    """A chat provider of `kind` ("local" or "together") for `model` (see module docstring)."""
    if kind == "local":
        from .local import LocalChat

        return LocalChat(model, **options)
    if kind == "together":
        from .together import TogetherChat

        return TogetherChat(model, **options)
    raise UserError(f"provider {kind!r}: expected one of {', '.join(PROVIDERS)}")
