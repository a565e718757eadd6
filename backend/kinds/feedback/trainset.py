"""The training JSONL: Together's conversational format with per-message integer weights.

Each processed conversation becomes `{"messages": [...]}` whose last message is the
improved assistant answer. Every message carries `"weight"`: 1 on that last assistant
message, 0 on every other one, so the loss covers only the answer the feedback produced
(earlier assistant turns are context, not targets). Weights are written as JSON integers:
Together rejects `1.0`/`0.0` (the seed's troubleshooting note), and the checker below
refuses floats and booleans before anything is uploaded.

The local trainer applies the same mask with `loss_on = "last_assistant"` (labels -100
outside the last assistant message); `weighted_labels` builds labels from the weights
themselves so a test can hold the two equal on the same conversation.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ...errors import UserError


def training_row(record: dict[str, Any]) -> dict[str, Any]:
    """One processed conversation as a weighted training example."""
    context = [{"role": m["role"], "content": m["content"]} for m in record["conversation_context"]]
    messages = [*context, {"role": "assistant", "content": record["improved_response"]}]
    last = len(messages) - 1
    return {"messages": [{**m, "weight": int(i == last)} for i, m in enumerate(messages)]}


def write_training_jsonl(records: Sequence[dict[str, Any]], path: Path) -> int:
    """Write the training file (through a temp file, so it is whole or absent); rows written."""
    rows = [training_row(r) for r in records]
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )
    tmp.replace(path)
    return len(rows)


def check_training_jsonl(path: Path) -> int:
    """The seed's format checks plus the SDK's own checker; returns the example count.

    Checks per line: an object with `messages`; roles system/user/assistant; the
    conversation starts with system or user and alternates user/assistant after it;
    every weight is the integer 0 or 1; exactly one message is weighted and it is the
    last message, an assistant message.
    """
    n = 0
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{where}: bad JSON ({exc.msg})") from None
        messages = obj.get("messages") if isinstance(obj, dict) else None
        if not isinstance(messages, list) or not messages:
            raise UserError(f'{where}: expected {{"messages": [...]}}')
        roles = [m.get("role") for m in messages]
        body = roles[1:] if roles[0] == "system" else roles
        if not body or any(
            r != ("user" if i % 2 == 0 else "assistant") for i, r in enumerate(body)
        ):
            raise UserError(
                f"{where}: roles must be [system], user, assistant, user, ... ({roles})"
            )
        for i, m in enumerate(messages):
            w = m.get("weight")
            if type(w) is not int or w not in (0, 1):
                raise UserError(
                    f"{where}: message {i + 1}: weight {w!r} must be the integer 0 or 1 (not a float)"
                )
            if not isinstance(m.get("content"), str):
                raise UserError(f"{where}: message {i + 1}: content must be a string")
        weighted = [i for i, m in enumerate(messages) if m["weight"] == 1]
        if weighted != [len(messages) - 1] or roles[-1] != "assistant":
            raise UserError(f"{where}: only the last message, an assistant one, may have weight 1")
        n += 1
    if n == 0:
        raise UserError(f"{path}: no training examples")
    from together.lib.utils.files import check_file

    report = check_file(path, purpose="fine-tune")
    if not report.get("is_check_passed"):
        raise UserError(f"{path}: together's file checker: {report.get('message')}")
    return n


def weighted_labels(tok: Any, row: dict[str, Any], max_len: int) -> list[int]:
    """Token labels from the weights: a token is trained iff it lies in a weight-1 message.

    Spans come from the trainer's own span finder over every assistant message, filtered
    by weight; tokens are mapped exactly as the trainer maps them.
    """
    from ...training import assistant_spans

    messages = [{"role": m["role"], "content": m["content"]} for m in row["messages"]]
    text, spans = assistant_spans(tok, messages, "assistant")
    assistant_weights = [m["weight"] for m in row["messages"] if m["role"] == "assistant"]
    kept = [s for s, w in zip(spans, assistant_weights, strict=True) if w == 1]
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(enc["input_ids"])[:max_len]
    return [
        tid if end > start and any(a <= start < b for a, b in kept) else -100
        for tid, (start, end) in zip(ids, enc["offset_mapping"], strict=False)
    ]
