"""Tags and a free-text note per run, kept in the run directory as `notes.json`.

They are the researcher's annotations, not part of the experiment: config.json stays
as it was written, and a reproduction does not copy them. The file is replaced
atomically, so the dashboard and `labdeck tag/note` may edit it in turn.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import UserError
from .jsonio import read_json, write_json_atomic
from .runs import Run

NOTES = "notes.json"
_TAG = re.compile(r"^[\w.:+-]{1,40}$")


@dataclass
class Notes:
    tags: list[str] = field(default_factory=list)
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"tags": list(self.tags), "note": self.note}


def read_notes(run: Run) -> Notes:
    """The run's notes; a missing or unreadable file reads as none (never fatal)."""
    try:
        data = read_json(run.file(NOTES))
    except (OSError, ValueError):
        return Notes()
    if not isinstance(data, dict):
        return Notes()
    tags = [str(t) for t in data.get("tags") or [] if isinstance(t, str)]
    note = data.get("note")
    return Notes(tags, note if isinstance(note, str) else "")


def check_tag(tag: str) -> str:
    tag = tag.strip()
    if not _TAG.match(tag):
        raise UserError(f"tag {tag!r}: expected 1-40 letters, digits or . _ : + - (no spaces)")
    return tag


def write_notes(run: Run, notes: Notes) -> Notes:
    if not run.path.is_dir():
        raise UserError(f"{run.path}: no such run directory")
    clean = Notes(sorted(dict.fromkeys(check_tag(t) for t in notes.tags)), notes.note.strip())
    write_json_atomic(run.path / NOTES, clean.as_dict())
    return clean


def edit_tags(run: Run, add: Sequence[str] = (), remove: Sequence[str] = ()) -> Notes:
    current = read_notes(run)
    drop = {check_tag(t) for t in remove}
    tags = [t for t in current.tags if t not in drop] + [check_tag(t) for t in add]
    return write_notes(run, Notes(tags, current.note))


def set_note(run: Run, text: str) -> Notes:
    current = read_notes(run)
    return write_notes(run, Notes(current.tags, text))


def parse_tags(text: str) -> list[str]:
    """Tags typed in one line, separated by spaces or commas."""
    return [t for t in re.split(r"[\s,]+", text.strip()) if t]
