"""Stage 1: an improved answer per conversation, from the user's feedback or without it.

One record per conversation (key `["process", id]`), appended the moment its answer
arrives, so a kill mid-batch loses only requests still in flight. A request that finally
fails is recorded under a `failed` key, which does not mark the conversation done: a
resume asks again, and nothing already answered is asked (or paid for) twice.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ...jsonio import write_json_atomic
from ...ledger import unit_key
from ...providers import ChatProvider, ChatRequest, ChatResult
from .conversations import Conversation
from .telemetry import StageMeter

PROMPTS = Path(__file__).resolve().parent / "prompts"
GENERATION_METHOD = {"feedback": "feedback_based", "alternative": "alternative"}
SEED_FIELDS = (
    "conversation_id",
    "improved",
    "generation_method",
    "original_assistant_response",
    "conversation_context",
    "improvement_timestamp",
)


def template(name: str) -> str:
    return (PROMPTS / f"{name}.txt").read_text(encoding="utf-8")


def render_context(messages: list[dict[str, str]]) -> str:
    return "\n".join(f"{m['role'].upper()}: {m['content']}" for m in messages)


def request_for(
    conv: Conversation, method: str, max_tokens: int, temperature: float, seed: int
) -> ChatRequest:
    prompt = template(method).format(
        context=render_context(conv.context), original=conv.original, feedback=conv.feedback
    )
    return ChatRequest(
        [
            {"role": "system", "content": template("system").strip()},
            {"role": "user", "content": prompt},
        ],
        max_tokens=max_tokens,
        temperature=temperature,
        seed=seed,
    )


def key(conv_id: str) -> str:
    return unit_key("process", conv_id)


def record_of(conv: Conversation, method: str, res: ChatResult) -> dict[str, Any]:
    return {
        "stage": "process",
        "conversation_id": conv.id,
        "improved": True,
        "generation_method": GENERATION_METHOD[method],
        "original_assistant_response": conv.original,
        "conversation_context": conv.context,
        "improvement_timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "improved_response": res.text,
        "feedback": conv.feedback if method == "feedback" else None,
        "model": res.model,
        "tokens_in": res.tokens_in,
        "tokens_out": res.tokens_out,
        "latency_seconds": res.seconds,
        "attempts": res.attempts,
        "batch_size": res.batch_size,
    }


def run_process(
    ctx: Any, params: Any, convs: list[Conversation], chat: ChatProvider, meter: StageMeter
) -> None:
    todo = [c for c in convs if not ctx.is_done(key(c.id))]
    meter.start("process", len(convs), len(convs) - len(todo))
    if not todo:
        return
    ctx.info(f"process: {len(todo)} conversations with {chat.name}:{chat.model} ({params.method})")
    last_error: list[str] = []

    def on_result(i: int, res: ChatResult) -> None:
        conv = todo[i]
        if res.ok and res.text:
            ctx.record(key(conv.id), record_of(conv, params.method, res))
            meter.done += 1
        else:
            error = res.error or "empty answer"
            ctx.record(
                unit_key("failed", "process", conv.id, time.time()),
                {
                    "stage": "process",
                    "failed": True,
                    "conversation_id": conv.id,
                    "error": error,
                    "status": res.status,
                },
            )
            meter.failed += 1
            last_error.append(error)
            ctx.warn(f"conversation {conv.id}: {error}")
        meter.tick()
        ctx.check_stop()

    requests = [
        request_for(c, params.method, params.max_tokens, params.temperature, params.seed)
        for c in todo
    ]
    chat.chat(requests, on_result)
    meter.tick(force=True)
    if meter.failed:
        raise RuntimeError(
            f"process: {meter.failed} of {len(todo)} conversations failed (last: {last_error[-1]}); "
            "resume the run to retry them"
        )


def processed_records(ctx: Any, convs: list[Conversation]) -> list[dict[str, Any]]:
    """This run's processed conversations, in input order."""
    by_id = {
        r["conversation_id"]: r
        for r in ctx.ledger.records()
        if r.get("stage") == "process" and not r.get("failed")
    }
    return [by_id[c.id] for c in convs if c.id in by_id]


def export(records: list[dict[str, Any]], path: Path) -> None:
    """The seed's `-o` JSON: a list of its fields, plus the improved response and provenance."""
    rows = [
        {
            **{k: r[k] for k in SEED_FIELDS},
            "improved_response": r["improved_response"],
            "model": r["model"],
            "tokens_out": r["tokens_out"],
            "latency_seconds": r["latency_seconds"],
        }
        for r in records
    ]
    write_json_atomic(path, rows)
