"""The incremental model of a run that Monitor and Compare render, by what it reads.

- `view`: `RunView`, the fold of events.jsonl (and state.json) into bounded structures;
- `skim`: the older bytes before the tail the first frame starts from;
- `series`: bounded (x, y) series that keep every extreme;
- `structures`: the records folded into (phases, devices, batches, log lines) and
  helpers on event fields.

Everything the screens import stays importable from `labdeck.tui.data`.
"""

from .series import SERIES_CAP, Series
from .skim import skim_older
from .structures import (
    BatchMark,
    DeviceHistory,
    LogLine,
    Phase,
    ReadBatch,
    field_of,
    pick_default,
)
from .view import BATCH_MARKS, LOG_LINES, TABLE_ROWS, TAIL_BYTES, RunView

__all__ = [
    "BATCH_MARKS",
    "LOG_LINES",
    "SERIES_CAP",
    "TABLE_ROWS",
    "TAIL_BYTES",
    "BatchMark",
    "DeviceHistory",
    "LogLine",
    "Phase",
    "ReadBatch",
    "RunView",
    "Series",
    "field_of",
    "pick_default",
    "skim_older",
]
