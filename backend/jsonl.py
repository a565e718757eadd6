"""Append-only JSON-lines files: the one writer and the one reader behind events and records.

The writer may be killed at any byte, so:
- opening for append first cuts a torn last line (no trailing newline) so the next
  line never fuses with it;
- the reader advances its byte offset only past complete lines, so a half-written
  line is simply read on the next poll once it is finished.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .jsonio import dumps_line
from .secrets import redact, secret_values


def repair_torn_tail(path: Path) -> int:
    """Truncate a trailing partial line; returns the number of bytes removed."""
    try:
        size = os.path.getsize(path)
    except FileNotFoundError:
        return 0
    if size == 0:
        return 0
    with open(path, "rb+") as fh:
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return 0
        # Walk back in blocks to the last newline.
        pos = size
        block = 65536
        while pos > 0:
            start = max(0, pos - block)
            fh.seek(start)
            chunk = fh.read(pos - start)
            idx = chunk.rfind(b"\n")
            if idx >= 0:
                cut = start + idx + 1
                fh.truncate(cut)
                return size - cut
            pos = start
        fh.truncate(0)
        return size


class JsonlAppender:
    """Appends one JSON object per line, flushed to the OS on every line.

    A flush (not fsync) is what survives SIGKILL of the writer; `fsync=True` adds
    durability against power loss at a per-line cost.
    """

    def __init__(self, path: Path, fsync: bool = False) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        repair_torn_tail(self.path)
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - long-lived handle
        self._fsync = fsync
        self._secrets = secret_values()

    def append(self, obj: Any) -> None:
        line = dumps_line(obj)
        if self._secrets:
            line = redact(line, self._secrets)
        self._fh.write(line + "\n")
        self._fh.flush()
        if self._fsync:
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class JsonlReader:
    """Incremental reader: each `read_new()` returns objects appended since the last call.

    `bad_lines` counts lines that were complete but not valid JSON (a corrupt
    record); they are skipped, never fatal, so one bad line cannot blank a dashboard.
    """

    def __init__(self, path: Path, offset: int = 0) -> None:
        self.path = Path(path)
        self.offset = offset
        self.bad_lines = 0

    @classmethod
    def from_tail(cls, path: Path, max_bytes: int) -> JsonlReader:
        """A reader positioned so that it yields only (about) the last `max_bytes` of the file."""
        reader = cls(path)
        try:
            size = os.path.getsize(path)
        except FileNotFoundError:
            return reader
        if size <= max_bytes:
            return reader
        with open(path, "rb") as fh:
            fh.seek(size - max_bytes)
            fh.readline()  # skip the partial line we landed in
            reader.offset = fh.tell()
        return reader

    def read_new_lines(self) -> list[bytes]:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                data = fh.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n")
        if end < 0:
            return []
        self.offset += end + 1
        return data[: end + 1].splitlines()

    def read_new(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for line in self.read_new_lines():
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                self.bad_lines += 1
                continue
            if isinstance(obj, dict):
                out.append(obj)
            else:
                self.bad_lines += 1
        return out


def iter_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """All complete, valid objects in a file (a torn or corrupt line is skipped)."""
    yield from JsonlReader(path).read_new()


def last_object(path: Path, max_bytes: int = 65536) -> dict[str, Any] | None:
    """The last complete object in the file, reading only its tail."""
    objs = JsonlReader.from_tail(path, max_bytes).read_new()
    return objs[-1] if objs else None
