"""Memory and time of a `feedback` run before any weight is loaded (its dry run).

Only the stages that run here can be estimated: local generation, a local fine-tune,
local answers and a local judge, from each model's config (backend/estimate.py) and
the conversations' lengths (characters / 4). API calls and a Together fine-tune job
take what the service takes; the dry run says which stages it left out.
"""

from __future__ import annotations

from ...estimate import (
    Footprint,
    Hardware,
    device_for_map,
    footprint,
    generation_seconds,
    lora_training_seconds,
    mean_tokens,
    rough_time_line,
    text_tokens,
    training_activation_bytes,
)
from .config import Params
from .conversations import Conversation

TEMPLATE_TOKENS = 100  # the project's prompt templates around a conversation


def _tokens(conv: Conversation) -> int:
    return text_tokens(conv.original, conv.feedback, *(m["content"] for m in conv.context))


def estimate(
    p: Params, to_process: list[Conversation], tests: int
) -> tuple[int | None, float | None, list[str]]:
    """(memory bytes, seconds, lines); None when nothing here can be estimated."""
    device = device_for_map(p.device_map)
    hw = Hardware.for_device(device)
    per_conv = mean_tokens([_tokens(c) for c in to_process], default=200)
    prompt = per_conv + TEMPLATE_TOKENS
    # answers end well before max_tokens as a rule: take twice the original answer's length
    answer = mean_tokens([text_tokens(c.original) for c in to_process], default=100)
    seconds: dict[str, float] = {}
    memory: list[int] = []
    left_out: list[str] = []
    models: dict[str, Footprint | None] = {}

    def local(spec: str) -> Footprint | None:
        if spec not in models:
            models[spec] = footprint(spec, p.dtype)
        return models[spec]

    def generate(stage: str, spec: str, prompts: int, tokens_in: int, tokens_out: int) -> None:
        fp = local(spec)
        if fp is None:
            left_out.append(f"{stage} ({spec}: no config offline)")
            return
        seconds[stage] = seconds.get(stage, 0.0) + generation_seconds(
            fp, hw, prompts=prompts, batch=p.max_batch_size, prompt_tokens=tokens_in,
            new_tokens=tokens_out,
        )  # fmt: skip
        memory.append(fp.weight_bytes + fp.kv_cache_bytes(p.max_batch_size, tokens_in + tokens_out))

    api = p.provider != "local"
    if "process" in p.stages:
        if api:
            left_out.append("process (API)")
        else:
            new = min(p.max_tokens, 2 * answer)
            generate("process", p.generation_model, len(to_process), prompt, new)
    if "finetune" in p.stages:
        fp = local(p.model) if p.backend == "local" else None
        if fp is None:
            left_out.append("finetune (Together job)" if p.backend != "local" else "finetune")
        else:
            seq = min(p.max_seq_length, per_conv + answer)
            tokens = p.epochs * len(to_process) * seq
            seconds["finetune"] = lora_training_seconds(fp, hw, tokens) * (1.5 if p.full else 1.0)
            memory.append(fp.weight_bytes + training_activation_bytes(fp, p.micro_batch_size, seq))
    if "evaluate" in p.stages:
        if api:
            left_out.append("evaluate (API)")
        else:
            for spec in (p.model1 or p.model, p.model2 or p.model):
                generate("answers", spec, tests, prompt, min(p.eval_max_tokens, 2 * answer))
            verdict_in = prompt + 4 * answer
            generate("judge", p.judge, 2 * tests, verdict_in, p.judge_max_tokens)
    if not seconds:
        return None, None, [rough_time_line(device, seconds, left_out)]
    return max(memory), sum(seconds.values()), [rough_time_line(device, seconds, left_out)]
