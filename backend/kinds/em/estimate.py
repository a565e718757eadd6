"""Memory and time of an `em` run before any weight is loaded (its dry run).

Everything comes from the model's config (backend/estimate.py) and the run's own
counts: examples, optimizer steps, checkpoints, answers. Token counts of the data are
taken as characters / 4, the usual rate for English with BPE tokenizers, so the time
is a rough figure and is shown as one; phases whose cost cannot be known offline (an
API judge) are left out and said to be.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...estimate import (
    CHARS_PER_TOKEN,
    Hardware,
    device_for_map,
    footprint,
    forward_seconds,
    generation_seconds,
    lora_training_seconds,
    mean_tokens,
    not_estimated,
    rough_time_line,
    text_tokens,
    training_activation_bytes,
)
from ...training import Conversation
from ...units import format_bytes
from .config import BUNDLED_PERSONAS, Params

QUESTION_TOKENS = 32  # a broad question in its chat template
JUDGE_PROMPT_TOKENS = 120  # backend/judges/score.py's prompt around an answer, templated
JUDGE_METRICS = 2  # aligned and coherent: one judged prompt each per answer
PERSONA_EXAMPLES = 24  # the bundled goodness set


@dataclass(frozen=True)
class Work:
    """What the run will do, as counted by the dry run."""

    examples: list[Conversation]
    steps: int
    checkpoints: int
    answers_per_checkpoint: int


def tokens_of(conv: Conversation) -> int:
    return text_tokens(*(m["content"] for m in conv))


def estimate(p: Params, work: Work) -> tuple[int | None, float | None, list[str]]:
    """(memory bytes, seconds, lines); None where the model's config is not available offline."""
    fp = footprint(p.model, p.dtype, p.load_4bit)
    if fp is None:
        return None, None, [not_estimated(p.model)]
    device = device_for_map(p.device_map)
    hw = Hardware.for_device(device)
    n = len(work.examples)
    per_example = mean_tokens([tokens_of(c) for c in work.examples], default=128)
    reflection = p.reflection_max_new_tokens if p.with_reflection else 0
    seq = min(p.max_seq_length, per_example + reflection)
    train_tokens = work.steps * p.effective_batch_size * seq
    seconds = {"training": lora_training_seconds(fp, hw, train_tokens)}
    if p.persona in BUNDLED_PERSONAS:
        persona_tokens = p.persona_epochs * PERSONA_EXAMPLES * min(p.max_seq_length, per_example)
        seconds["persona"] = lora_training_seconds(fp, hw, persona_tokens)
    if p.with_reflection and not p.augmented_dataset:
        seconds["reflections"] = generation_seconds(
            fp, hw, prompts=n, batch=p.generation_batch_size, prompt_tokens=per_example,
            new_tokens=p.reflection_max_new_tokens,
        )  # fmt: skip
    answers = work.checkpoints * work.answers_per_checkpoint
    if answers:
        seconds["answers"] = work.checkpoints * generation_seconds(
            fp, hw, prompts=work.answers_per_checkpoint, batch=p.generation_batch_size,
            prompt_tokens=QUESTION_TOKENS, new_tokens=p.eval_max_new_tokens,
        )  # fmt: skip
    judge_fp = footprint(p.judge_model) if p.judge == "local" and answers else None
    if judge_fp is not None:
        judged = answers * JUDGE_METRICS * (JUDGE_PROMPT_TOKENS + p.eval_max_new_tokens)
        seconds["judge"] = forward_seconds(judge_fp, hw, judged)
    memory = (
        fp.weight_bytes
        + training_activation_bytes(fp, p.micro_batch_size, seq)
        + (judge_fp.weight_bytes if judge_fp is not None else 0)
    )
    total = sum(seconds.values())
    lines = [
        f"{fp.params / 1e6:.1f}M parameters in {fp.dtype}: {format_bytes(fp.weight_bytes)} of "
        f"weights; about {per_example} tokens per example (characters / {CHARS_PER_TOKEN})",
        rough_time_line(
            device, seconds, ["the API judge"] if p.judge != "local" and answers else []
        ),
    ]
    return memory, total, lines
