"""A run's records and artefacts as the Records screen lists them.

Every kind writes records.jsonl as one JSON object per finished unit; what a
researcher wants from it is the text (an answer, a conversation, a judge's reply) and
the number beside it (a score, a verdict). This reads any kind's records the same way:
the unit, where it sits (step, level, group, question), its scores, and its longest
text, with the whole record available for the side pane. Pure Python, no kind code.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labdeck.backend.jsonl import JsonlReader
from labdeck.backend.runs import ARTIFACTS, Run
from labdeck.backend.units import format_number

MAX_RECORDS = 20_000  # a records file larger than this shows its last records
# the sample index before the question: a long question id must not hide which sample
WHERE = ("step", "level", "group", "epoch", "checkpoint", "sample", "question_id", "prompt_id")
WHERE += ("conversation_id", "index")
ABBREVIATE = {"step": "step ", "level": "lvl ", "epoch": "ep ", "sample": "#"}  # others: value
HIDDEN = ("key", "_digest", "_d")
VERDICTS = ("score", "outcome", "consistent", "winner", "preferred", "choice", "correct", "reward")
# fields that hold what a researcher reads, before any other text
TEXT_KEYS = ("answer", "response", "completion", "output", "improved_response", "answer_model1")
TEXT_KEYS += ("messages", "conversation")
TEXT_KEYS += ("text", "content", "reason", "rationale", "prompt", "question")


@dataclass
class RecordRow:
    index: int
    unit: str
    where: str
    scores: str
    text: str
    record: dict[str, Any]

    def search_text(self) -> str:
        return json.dumps(self.record, ensure_ascii=False).lower()


def _texts(value: Any, path: str = "", scalars: bool = False) -> list[tuple[str, str]]:
    """Every string in a record with its dotted place (messages: `role: content`); with
    `scalars`, numbers, flags and nulls too (a judge's score beside its reply)."""
    out: list[tuple[str, str]] = []
    if isinstance(value, str):
        out.append((path, value))
    elif isinstance(value, dict):
        if isinstance(value.get("role"), str) and isinstance(value.get("content"), str):
            out.append((path, f"{value['role']}: {value['content']}"))
        else:
            for k, v in value.items():
                if k not in HIDDEN:
                    out += _texts(v, f"{path}.{k}" if path else str(k), scalars)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _texts(v, f"{path}[{i}]", scalars)
    elif scalars:
        out.append((path, json.dumps(value)))
    return out


def scores_of(record: dict[str, Any]) -> str:
    """The judged numbers and verdicts: `aligned 62.4 coherent 80`, `winner B`, `score 7`
    (three significant digits: the full value is in the side pane)."""
    parts = []
    for k, v in record.items():
        if isinstance(v, dict) and isinstance(v.get("score"), int | float):
            parts.append(f"{k} {format_number(v['score'], 3)}")
        elif k in VERDICTS or k.startswith("verdict"):
            parts.append(f"{k} {format_number(v, 3)}" if isinstance(v, float) else f"{k} {v}")
    return " ".join(parts)


def summarise(index: int, record: dict[str, Any]) -> RecordRow:
    unit = str(
        record.get("unit") or record.get("stage") or str(record.get("key", "")).split("/")[0]
    )
    where = " ".join(
        f"{ABBREVIATE.get(k, '')}{record[k]}" for k in WHERE if record.get(k) is not None
    )
    return RecordRow(
        index, unit, where, scores_of(record), " ".join(main_text(record).split()), record
    )


def main_text(record: dict[str, Any]) -> str:
    """The text to list: a known text field (an answer, a conversation), else the longest
    string over 20 characters (a method name or a number in text is not it)."""
    for key in TEXT_KEYS:
        if key in record:
            found = _texts(record[key])
            if found:
                return " ".join(t for _, t in found)
    texts = [t for p, t in _texts(record) if p not in WHERE and len(t) > 20]
    return max(texts, key=len) if texts else ""


def full_text(record: dict[str, Any]) -> str:
    """The whole record for the side pane: short fields first, then each text in full."""
    short, long = [], []
    for k, v in record.items():
        if k in HIDDEN:
            continue
        if (isinstance(v, str) and len(v) > 60) or (isinstance(v, list | dict) and _texts(v)):
            long.append(k)
        else:
            short.append(
                f"{k}: {json.dumps(v, ensure_ascii=False) if not isinstance(v, str) else v}"
            )
    lines = short[:]
    for k in long:
        lines.append("")
        lines.append(f"── {k} ──")
        v = record[k]
        if isinstance(v, str):
            lines.append(v)
        else:
            lines += [f"{p}: {t}" if p else t for p, t in _texts(v, scalars=True)]
    return "\n".join(lines)


def read_records(run: Run) -> tuple[list[RecordRow], int]:
    """(rows, corrupt line count); the newest MAX_RECORDS of a very large file."""
    reader = JsonlReader.from_tail(run.records_path, 64 * 1024 * 1024)
    records = [r for r in reader.read_new() if isinstance(r, dict)][-MAX_RECORDS:]
    return [summarise(i, r) for i, r in enumerate(records)], reader.bad_lines


@dataclass(frozen=True)
class Artefact:
    path: str  # relative to artifacts/
    size: int

    @property
    def is_image(self) -> bool:
        return self.path.lower().endswith((".png", ".jpg", ".jpeg", ".svg"))


def list_artefacts(run: Run, limit: int = 500) -> list[Artefact]:
    """Files under artifacts/, images first, then by name."""
    root = run.path / ARTIFACTS
    out: list[Artefact] = []
    for folder, _, files in os.walk(root):
        for name in files:
            p = Path(folder) / name
            try:
                out.append(Artefact(str(p.relative_to(root)), p.stat().st_size))
            except OSError:
                continue
            if len(out) >= limit:
                break
    return sorted(out, key=lambda a: (not a.is_image, a.path))
