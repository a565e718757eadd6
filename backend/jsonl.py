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
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .jsonio import dumps_line


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

    A flush is what survives SIGKILL of the writer; surviving a power loss or a node
    crash needs an fsync, which costs a disk round trip. `sync_every` chooses:
    None never fsyncs (the event stream: losing its last lines loses nothing), 0
    fsyncs every line, and a positive number of seconds is a group commit: a line is
    fsynced together with the lines around it, at most once per interval, and
    `sync()` (phase ends, the heartbeat, `close`) commits whatever is still pending.
    """

    def __init__(self, path: Path, sync_every: float | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        repair_torn_tail(self.path)
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - long-lived handle
        self._sync_every = sync_every
        self._lock = threading.Lock()
        self._pending = 0  # lines flushed but not yet fsynced
        self._last_sync = time.monotonic()
        self.syncs = 0

    def append(self, obj: Any) -> None:
        line = dumps_line(obj)  # secrets masked there
        with self._lock:
            self._fh.write(line + "\n")
            self._fh.flush()
            self._pending += 1
            every = self._sync_every
            if every is not None and time.monotonic() - self._last_sync >= every:
                self._sync_locked()

    def sync(self) -> None:
        """fsync the lines appended since the last fsync (no-op when none are pending)."""
        with self._lock:
            if self._pending and not self._fh.closed:
                self._sync_locked()

    def _sync_locked(self) -> None:
        os.fsync(self._fh.fileno())
        self._pending = 0
        self._last_sync = time.monotonic()
        self.syncs += 1

    def close(self) -> None:
        with self._lock:
            if self._fh.closed:
                return
            if self._sync_every is not None and self._pending:
                self._sync_locked()
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


def iter_line_blocks(path: Path, block: int = 1 << 22) -> Iterator[bytes]:
    """The file's complete lines, in blocks of about `block` bytes that each end at a
    newline (a torn last line is left out). Scanning block by block keeps memory and
    the per-line cost flat however long the file grows, where one read of a
    million-line file allocates it whole and then every line again."""
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below, also when the caller stops early
    except FileNotFoundError:
        return
    with fh:
        rest = b""
        while data := fh.read(block):
            data = rest + data
            end = data.rfind(b"\n") + 1
            rest = data[end:]
            if end:
                yield data[:end]


def iter_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """All complete, valid objects in a file (a torn or corrupt line is skipped)."""
    yield from JsonlReader(path).read_new()


def last_object(path: Path, max_bytes: int = 65536) -> dict[str, Any] | None:
    """The last complete object in the file, reading only its tail."""
    objs = JsonlReader.from_tail(path, max_bytes).read_new()
    return objs[-1] if objs else None
