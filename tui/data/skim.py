"""Reading the bytes of events.jsonl that lie before the tail a RunView starts from.

The first frame folds only the tail; this skim then delivers the history. It must not
hide what a full fold would show, so it takes *every* event that feeds a plot or a
table (metrics, memory samples, trajectories) and every rare event (phase, batch,
checkpoint, status, error, a kind's kept types); `Series` then keeps each bucket's
min and max, so a spike anywhere in the file reaches the plot. What it leaves out is
what the screen cannot show anyway: progress counters other than the last one before
each phase change and at each chunk end (a phase's counter is its latest value), and
log lines (the log pane shows the newest ones, which the tail holds).

Lines are found with byte searches (C speed) for the compact form every writer uses
(backend.jsonio.dumps_line) and only those lines are parsed; the tail is parsed in
full whatever its form.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CHUNK_BYTES = 8 * 1024 * 1024


def _needle(event_type: str) -> bytes:
    return f'"type":"{event_type}"'.encode()


# Every event of these types is parsed: each one changes a plot, a table or a mark.
FULL_TYPES = (
    "metric",
    "memory",
    "trajectory",
    "phase",
    "phase_end",
    "batch",
    "checkpoint",
    "status",
    "error",
)
_PROGRESS = _needle("progress")
_PHASE = _needle("phase")


def _line_at(data: bytes, i: int) -> tuple[int, int]:
    start = data.rfind(b"\n", 0, i) + 1
    stop = data.find(b"\n", i)
    return start, len(data) if stop < 0 else stop


def _lines_with(data: bytes, needle: bytes, into: dict[int, tuple[int, int]]) -> None:
    """Byte ranges of every line of `data` that contains `needle`, keyed by start."""
    i = data.find(needle)
    while i >= 0:
        start, stop = _line_at(data, i)
        into[start] = (start, stop)
        i = data.find(needle, stop)


def _last_before(data: bytes, needle: bytes, end: int) -> tuple[int, int] | None:
    i = data.rfind(needle, 0, end)
    return _line_at(data, i) if i >= 0 else None


def skim_older(path: Path, end: int, extra_types: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Events from bytes [0, end) the screen needs, in file order (by seq).

    Returned in file order, so folding them before the tail keeps every series
    monotonic. `extra_types` are event types a kind's tables list (kept whole)."""
    needles = tuple(_needle(t) for t in (*FULL_TYPES, *extra_types))
    found: dict[int, dict[str, Any]] = {}
    with open(path, "rb") as fh:
        pos = 0
        carry = b""
        while pos < end:
            data = carry + fh.read(min(CHUNK_BYTES, end - pos))
            pos = fh.tell()
            cut = len(data) if pos >= end else data.rfind(b"\n") + 1
            carry, data = data[cut:], data[:cut]
            spans: dict[int, tuple[int, int]] = {}
            for needle in needles:
                _lines_with(data, needle, spans)
            # A phase's counter: the last progress before each phase change and at the end.
            phases: dict[int, tuple[int, int]] = {}
            _lines_with(data, _PHASE, phases)
            for mark in [*phases, len(data)]:
                span = _last_before(data, _PROGRESS, mark)
                if span is not None:
                    spans[span[0]] = span
            for start in sorted(spans):
                a, b = spans[start]
                try:
                    obj = json.loads(data[a:b])
                except ValueError:
                    continue
                if isinstance(obj, dict):
                    found[int(obj.get("seq", -len(found) - 1))] = obj
    return [found[k] for k in sorted(found)]
