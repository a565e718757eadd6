"""Completed work units (`records.jsonl`) and what resume needs from them.

A unit's record is appended (and flushed) only after the unit is finished, and
the file is repaired on open, so after a SIGKILL at any byte every unit is either
fully recorded or absent: resume redoes exactly the absent ones, none lost, none
doubled.

Records are written with `key` as their first field so the resume scan can read
the key straight off the start of each line without parsing the whole record:
that keeps scanning 100 000 records well under half a second.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .jsonl import JsonlAppender, JsonlReader

_KEY_PREFIX = b'{"key":'
_DECODER = json.JSONDecoder()


def _key_of(line: bytes) -> str | None:
    if line.startswith(_KEY_PREFIX) and line.rstrip().endswith(b"}"):
        try:
            key, _ = _DECODER.raw_decode(line[len(_KEY_PREFIX) :].decode("utf-8"))
        except ValueError:
            return None
        return key if isinstance(key, str) else None
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    key = obj.get("key") if isinstance(obj, dict) else None
    return key if isinstance(key, str) else None


def scan_keys(path: Path) -> set[str]:
    """Keys of every complete record (a torn or corrupt line contributes nothing)."""
    keys: set[str] = set()
    for line in JsonlReader(path).read_new_lines():
        key = _key_of(line)
        if key is not None:
            keys.add(key)
    return keys


def unit_key(*parts: Any) -> str:
    """A stable key from the fields that identify a unit (order matters)."""
    return json.dumps(parts, separators=(",", ":"), ensure_ascii=False, default=str)


class Ledger:
    """Resume bookkeeping for one run: which unit keys are done, and appending new ones."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._out = JsonlAppender(self.path)  # repairs a torn tail before we scan
        self._done = scan_keys(self.path)

    def __contains__(self, key: str) -> bool:
        return key in self._done

    def __len__(self) -> int:
        return len(self._done)

    @property
    def keys(self) -> frozenset[str]:
        return frozenset(self._done)

    def append(self, key: str, record: dict[str, Any]) -> None:
        """Record a finished unit; a key recorded twice is a bug in the caller, so refuse it."""
        if key in self._done:
            raise ValueError(f"work unit {key!r} is already recorded in {self.path}")
        self._out.append({"key": key, **{k: v for k, v in record.items() if k != "key"}})
        self._done.add(key)

    def records(self) -> list[dict[str, Any]]:
        return JsonlReader(self.path).read_new()

    def close(self) -> None:
        self._out.close()
