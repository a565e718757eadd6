"""Prompt sets: the shipped ones (prompts/*.toml) and the user's own files.

Every (group, level, repeat) answers all prompts of the set, and a prompt's text
is part of its record key, so a set must not hold the same text twice: that is
refused here with the file and both positions named, before anything runs.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ...errors import UserError
from .config import PROMPT_SETS

PERPLEXITY_TEXT_FILE = "perplexity.txt"


@dataclass(frozen=True)
class Prompt:
    id: int  # position in the set: the seed's prompt_id
    text: str
    category: str = ""


@dataclass(frozen=True)
class PromptSet:
    name: str
    prompts: tuple[Prompt, ...]
    source: str

    def __len__(self) -> int:
        return len(self.prompts)


def _data_file(name: str) -> Any:
    return resources.files(__package__).joinpath("prompts", name)


def shipped_perplexity_text() -> str:
    return _data_file(PERPLEXITY_TEXT_FILE).read_text(encoding="utf-8").strip()


def _entries_from(data: Any, where: str) -> list[tuple[str, str]]:
    """(text, category) pairs from the decoded file, whatever its shape."""
    if isinstance(data, dict):
        if "prompts" not in data:
            raise UserError(f"{where}: no 'prompts' list found")
        data = data["prompts"]
    if not isinstance(data, list):
        raise UserError(f"{where}: 'prompts' must be a list, got {type(data).__name__}")
    out: list[tuple[str, str]] = []
    for i, item in enumerate(data):
        if isinstance(item, str):
            text, category = item, ""
        elif isinstance(item, dict) and isinstance(item.get("text"), str):
            text, category = item["text"], str(item.get("category", ""))
        else:
            raise UserError(
                f"{where}: prompt #{i} must be a string or a table with a 'text' string"
            )
        if not text.strip():
            raise UserError(f"{where}: prompt #{i} is empty")
        out.append((text.strip(), category))
    return out


def _read_file(path: Path) -> list[tuple[str, str]]:
    where = str(path)
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{where}: prompt file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{where}: cannot read prompt file ({exc})") from None
    suffix = path.suffix.lower()
    if suffix == ".txt":
        lines = [ln.strip() for ln in raw.splitlines()]
        return [(ln, "") for ln in lines if ln and not ln.startswith("#")]
    try:
        data = tomllib.loads(raw) if suffix == ".toml" else json.loads(raw)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{where}: malformed {suffix[1:].upper()}: {exc}") from None
    return _entries_from(data, where)


def load_prompt_set(spec: str, limit: int = 0) -> PromptSet:
    """`spec` is a shipped set name or a file path; `limit` keeps the first N (0 = all)."""
    if spec in PROMPT_SETS:
        source = f"{spec} (shipped)"
        data = tomllib.loads(_data_file(f"{spec}.toml").read_text(encoding="utf-8"))
        entries, name = _entries_from(data, source), spec
    else:
        path = Path(spec).expanduser()
        source, name = str(path), path.stem
        entries = _read_file(path)
    if not entries:
        raise UserError(f"{source}: the prompt set is empty")
    seen: dict[str, int] = {}
    for i, (text, _) in enumerate(entries):
        if text in seen:
            raise UserError(f"{source}: prompt #{i} repeats prompt #{seen[text]} ({text[:60]!r})")
        seen[text] = i
    if limit:
        entries = entries[:limit]
    prompts = tuple(Prompt(i, text, cat) for i, (text, cat) in enumerate(entries))
    return PromptSet(name=name, prompts=prompts, source=source)
