"""The live event stream (`events.jsonl`) that the dashboard renders.

Every event is `{"t": unix time, "seq": n, "type": ..., ...}`. `seq` continues
across resumes (the writer reads the last seq on open), so a reader can tell a
resumed run's events from a replay. Readers use `JsonlReader` (incremental by
byte offset, tolerant of a torn last line).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .jsonl import JsonlAppender, JsonlReader, last_object
from .secrets import redact_obj

EVENT_TYPES = (
    "status",  # status: queued/running/interrupted/failed/completed
    "phase",  # name, total
    "progress",  # phase, done, total
    "memory",  # devices: [{device, used, total, util, source}]
    "batch",  # size, reason: start/grow/shrink/oom/pause
    "metric",  # name, value, step | level, [group]
    "checkpoint",  # step, path, metrics
    "trajectory",  # epoch entry
    "log",  # level, message
    "error",  # message
)

__all__ = ["EVENT_TYPES", "EventReader", "EventWriter"]

EventReader = JsonlReader


class EventWriter:
    """Thread-safe appender of events; the memory sampler thread and the kind share it."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._out = JsonlAppender(self.path)
        last = last_object(self.path)
        self._seq = int(last.get("seq", -1)) + 1 if last else 0
        self._lock = threading.Lock()
        self._listeners: list[Callable[[dict[str, Any]], None]] = []

    def add_listener(self, fn: Callable[[dict[str, Any]], None]) -> None:
        """Also hand every event to `fn` (the foreground progress display)."""
        self._listeners.append(fn)

    def emit(self, type: str, **fields: Any) -> dict[str, Any]:
        with self._lock:
            # Listeners (the console view) see the event as it is written: masked.
            event = redact_obj(
                {"t": round(time.time(), 3), "seq": self._seq, "type": type, **fields}
            )
            self._seq += 1
            self._out.append(event)
        for fn in self._listeners:
            fn(event)
        return event

    def close(self) -> None:
        with self._lock:
            self._out.close()
