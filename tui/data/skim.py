"""Reading the bytes of events.jsonl that lie before the tail a RunView starts from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SKIM_WINDOWS = 240
SKIM_WINDOW_BYTES = 2 * 1024

# Events whose loss would change what the screen says (a missing checkpoint row, a
# missing OOM mark). The skim finds them with plain byte searches (fast, C speed) for
# the compact form every writer uses (backend.jsonio.dumps_line), never parsing
# every line; the tail is parsed in full whatever its form.
_RARE_NEEDLES = tuple(
    f'"type":"{t}"'.encode()
    for t in ("phase", "batch", "checkpoint", "trajectory", "status", "error")
)
_TABLE_NEEDLES = (b'"epoch":', b'"level":')  # per-epoch / per-level metrics
_METRIC = b'"type":"metric"'


def skim_older(path: Path, end: int, windows: int = SKIM_WINDOWS) -> list[dict[str, Any]]:
    """Events from bytes [0, end): every rare event, plus dense events from sampled windows.

    Returned in file order (by seq), so folding them before the tail keeps every
    series monotonic.
    """
    found: dict[int, dict[str, Any]] = {}

    def take(line: bytes) -> None:
        try:
            obj = json.loads(line)
        except ValueError:
            return
        if isinstance(obj, dict):
            found[int(obj.get("seq", -len(found) - 1))] = obj

    chunk_size = 8 * 1024 * 1024
    with open(path, "rb") as fh:
        pos = 0
        carry = b""
        while pos < end:
            data = carry + fh.read(min(chunk_size, end - pos))
            pos = fh.tell()
            cut = data.rfind(b"\n") + 1
            carry, data = data[cut:], data[:cut]
            for needle in (*_RARE_NEEDLES, *_TABLE_NEEDLES):
                i = data.find(needle)
                while i >= 0:
                    start = data.rfind(b"\n", 0, i) + 1
                    stop = data.find(b"\n", i)
                    stop = len(data) if stop < 0 else stop
                    line = data[start:stop]
                    if needle in _RARE_NEEDLES or _METRIC in line:
                        take(line)
                    i = data.find(needle, stop)
        # Sample at most an eighth of the older bytes: a skim, not a second full read.
        windows = min(windows, end // (SKIM_WINDOW_BYTES * 8))
        if windows > 0:
            step = end / windows
            for w in range(windows):
                fh.seek(int(w * step))
                raw = fh.read(min(SKIM_WINDOW_BYTES, end - int(w * step)))
                lines = raw.split(b"\n")
                # The first piece is a partial line and so is the last (unless the
                # window ends on a newline); both are dropped.
                for line in lines[1:-1]:
                    if line:
                        take(line)
    return [found[k] for k in sorted(found)]
