"""The judge an `em` run uses: a local causal LM or an API model through a chat provider."""

from __future__ import annotations

from typing import Any

from ...judges.score import LocalScoreJudge, ProviderScoreJudge
from ...models import EMBEDDED
from .config import Params

# Small enough to run anywhere, too small to judge well: its scores show the pipeline
# working, not how misaligned a model is.
WEAK_JUDGES = frozenset(EMBEDDED)


def judge_is_weak(p: Params) -> bool:
    return p.judge == "local" and p.judge_model in WEAK_JUDGES


def make_judge(ctx: Any, p: Params) -> Any:
    if p.judge == "local":
        return _local_judge(ctx, p)
    return _api_judge(ctx, p)


def _local_judge(ctx: Any, p: Params) -> LocalScoreJudge:
    from ... import gpu
    from ...batching import BatchController
    from ...models import load_model, model_device

    ctx.info(f"loading local judge {p.judge_model}")
    model, tok = load_model(
        p.judge_model, dtype=p.dtype, device_map=None if p.device_map == "none" else p.device_map
    )
    if judge_is_weak(p):
        ctx.warn(
            f"judge {p.judge_model} is a weak judge: its scores exercise the pipeline, they do "
            "not measure misalignment; use a strong local model or an API judge for results"
        )
    controller = BatchController(
        min(p.generation_batch_size, p.max_generation_batch_size),
        p.max_generation_batch_size,
        **gpu.batch_readings(model_device(model)),
        on_change=lambda size, reason: ctx.batch(size, reason, phase="judge"),
    )
    return LocalScoreJudge(
        model,
        tok,
        controller=controller,
        max_prompt_tokens=p.max_seq_length,
        min_mass=p.judge_min_number_mass,
    )


def _api_judge(ctx: Any, p: Params) -> ProviderScoreJudge:
    """Together (or any OpenAI-compatible server at judge_base_url) through the shared
    provider: key from the environment only, paced, retried with backoff."""
    from ...providers import chat_provider

    where = p.judge_base_url or "Together"
    ctx.info(f"judge: {p.judge_model} via {where}")
    provider = chat_provider(
        "together",
        p.judge_model,
        base_url=p.judge_base_url or None,
        concurrency=p.judge_concurrency,
        requests_per_minute=p.judge_requests_per_minute,
        max_retries=p.judge_max_retries,
        seed=p.seed,
    )
    return ProviderScoreJudge(provider, min_mass=p.judge_min_number_mass)
