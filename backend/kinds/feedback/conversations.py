"""Conversations with user feedback: the accepted input shapes, read and validated.

Accepted files (torch-free, so presets are checked before a run directory exists):

- JSONL: one conversation object per line (blank lines skipped), or
- JSON: a list of conversation objects.

A conversation object:

    {"conversation_id": "c1",                  # or "id"; default: conv-<position>
     "messages": [{"role": "system"|"user"|"assistant", "content": "..."}, ...],
     "feedback": "..."}                        # optional, see below

The *original answer* is the last assistant message. The user's *feedback* is either
the `feedback` field (then the messages end with that assistant message) or the user
message that follows the last assistant message. Everything before the original answer
is the *context* the improved answer is generated for and trained on.

Processed records (this kind's own output, or the seed's `-o` JSON) are read by
`read_processed`: records with `conversation_context` and `improved_response`.

Errors name the file and the line (JSONL) or item (JSON) and what is wrong, in one line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import UserError

ROLES = ("system", "user", "assistant")
BUNDLED = Path(__file__).resolve().parent / "data" / "conversations.jsonl"


@dataclass(frozen=True)
class Conversation:
    id: str
    context: list[dict[str, str]]  # messages before the original answer
    original: str
    feedback: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "conversation_id": self.id,
            "context": self.context,
            "original": self.original,
            "feedback": self.feedback,
        }


def _items(path: Path) -> list[tuple[str, Any]]:
    """(where, object) per item, `where` being `file:line N` or `file: item N`."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read ({exc})") from None
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(
                f"{path}: bad JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
            ) from None
        return [(f"{path}: item {i + 1}", obj) for i, obj in enumerate(data)]
    out = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append((f"{path}:{lineno}", json.loads(line)))
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}:{lineno}: bad JSON at column {exc.colno}: {exc.msg}") from None
    return out


def _messages(where: str, obj: dict[str, Any]) -> list[dict[str, str]]:
    messages = obj.get("messages", obj.get("conversation"))
    if not isinstance(messages, list) or not messages:
        raise UserError(f'{where}: missing key "messages" (a non-empty list of messages)')
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise UserError(f"{where}: message {i + 1} is not an object")
        for key in ("role", "content"):
            if key not in m:
                raise UserError(f'{where}: message {i + 1}: missing key "{key}"')
        if m["role"] not in ROLES:
            raise UserError(
                f"{where}: message {i + 1}: role {m['role']!r}; expected one of {', '.join(ROLES)}"
            )
        if not isinstance(m["content"], str):
            raise UserError(f"{where}: message {i + 1}: content must be a string")
        out.append({"role": m["role"], "content": m["content"]})
    return out


def parse_conversation(where: str, obj: Any, position: int) -> Conversation:
    if not isinstance(obj, dict):
        raise UserError(f"{where}: expected an object, got {type(obj).__name__}")
    messages = _messages(where, obj)
    last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=None)
    if last is None:
        raise UserError(f"{where}: no assistant message (there is no answer to improve)")
    after = messages[last + 1 :]
    feedback = obj.get("feedback")
    if feedback is not None:
        if not isinstance(feedback, str) or not feedback.strip():
            raise UserError(f'{where}: "feedback" must be a non-empty string')
        if after:
            raise UserError(
                f'{where}: "feedback" is given but messages continue after the last assistant message'
            )
    else:
        if not after or after[0]["role"] != "user" or not after[0]["content"].strip():
            raise UserError(
                f"{where}: no user feedback after the last assistant message "
                '(add a user message after it or a "feedback" field)'
            )
        feedback = after[0]["content"]
    cid = obj.get("conversation_id", obj.get("id", f"conv-{position}"))
    if not isinstance(cid, str | int) or str(cid) == "":
        raise UserError(f"{where}: conversation_id must be a non-empty string or number")
    if not any(m["role"] == "user" for m in messages[:last]):
        raise UserError(f"{where}: no user message before the assistant's answer")
    return Conversation(str(cid), messages[:last], messages[last]["content"], feedback)


def read_conversations(path: Path | str) -> list[Conversation]:
    """Every conversation in the file, validated; duplicate ids are an error."""
    path = Path(path)
    out: list[Conversation] = []
    seen: dict[str, str] = {}
    for position, (where, obj) in enumerate(_items(path)):
        conv = parse_conversation(where, obj, position)
        if conv.id in seen:
            raise UserError(f"{where}: conversation_id {conv.id!r} already used at {seen[conv.id]}")
        seen[conv.id] = where
        out.append(conv)
    if not out:
        raise UserError(f"{path}: no conversations")
    return out


def read_processed(path: Path | str) -> list[dict[str, Any]]:
    """Processed records (this kind's `processed.json` or the seed's `-o` JSON), validated."""
    path = Path(path)
    out = []
    for where, obj in _items(path):
        if not isinstance(obj, dict):
            raise UserError(f"{where}: expected an object, got {type(obj).__name__}")
        for key in ("conversation_id", "conversation_context", "improved_response"):
            if key not in obj:
                raise UserError(f'{where}: missing key "{key}" (expected a processed conversation)')
        if obj.get("improved") is False:
            continue
        if not isinstance(obj["conversation_context"], list) or not obj["conversation_context"]:
            raise UserError(f'{where}: "conversation_context" must be a non-empty list of messages')
        _messages(where, {"messages": obj["conversation_context"]})
        out.append(obj)
    if not out:
        raise UserError(f"{path}: no improved conversations")
    return out
