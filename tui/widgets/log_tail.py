"""The run's log tail: appends only lines it has not written yet (no full redraws).

Built on Textual's `Log` (plain lines, rendered lazily) because a run may log
hundreds of lines a second and a styled line per write would cost the UI thread
more than everything else on the Monitor screen together.
"""

from __future__ import annotations

from datetime import datetime

from textual.widgets import Log

from ..data import LOG_LINES, RunView

PREFIX = {"warning": "WARN ", "error": "ERROR ", "status": "status: "}


class LogTail(Log):
    def __init__(self, **kw) -> None:
        super().__init__(max_lines=LOG_LINES, **kw)
        self._written = 0

    def sync(self, view: RunView, pattern: str = "") -> None:
        """Append new lines; with `pattern`, only those containing it (case-insensitive;
        `warn`/`error` also match by level)."""
        new = view.log_count - self._written
        if new <= 0:
            return
        lines = list(view.log)[-min(new, len(view.log)) :]
        texts = (
            f"{datetime.fromtimestamp(line.t).strftime('%H:%M:%S') if line.t else '--:--:--'} "
            f"{PREFIX.get(line.level, '')}{line.message}"
            for line in lines
        )
        needle = pattern.lower()
        self.write_lines(t for t in texts if not needle or needle in t.lower())
        self._written = view.log_count

    def rewrite(self, view: RunView, pattern: str = "") -> None:
        """After the model was refolded or the filter changed: show the tail again."""
        self.clear()
        self._written = view.log_count - len(view.log)
        self.sync(view, pattern)
