"""Third-party noise goes to the run's runner.log, not to the console.

Libraries talk on stderr in three ways: `warnings.warn` (transformers' FutureWarnings),
log records with no handler of their own (Python's last-resort handler prints them:
bitsandbytes' "Failed to load CPU gemm_4bit_forward ..." at import), and their own
stderr handlers (transformers installs one on import). None of it is the user's
business while a run is on screen, `--quiet` least of all, but all of it may explain a
failure later, so for the duration of a run:

- `sys.stderr` is a line sink into runner.log, which catches warnings, last-resort log
  records, progress bars and any handler a library creates while the run goes on;
- stream handlers that already write to the real stderr (a library imported before the
  run) are pointed at the same sink, except the run's own console handler.

Everything is restored afterwards. The console view writes to stdout and the run's
console handler to the stderr it was given, so labdeck's own lines are untouched.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
from collections.abc import Iterator
from typing import Any, TextIO


class LineSink:
    """A text stream whose complete lines become WARNING records of `handler` (named
    after the stream); a carriage-return redraw keeps only its last state."""

    def __init__(self, handler: logging.Handler, name: str = "stderr") -> None:
        self.handler, self.name = handler, name
        self._buffer = ""
        self._lock = threading.Lock()
        self._detached_to: TextIO | None = None

    def write(self, text: str) -> int:
        if self._detached_to is not None:  # a library kept the stream after the run
            return self._detached_to.write(text)
        with self._lock:
            self._buffer += text
            *lines, self._buffer = self._buffer.split("\n")
        for line in lines:
            self._emit(line)
        return len(text)

    def _emit(self, line: str) -> None:
        line = line.rsplit("\r", 1)[-1].rstrip()
        if line:
            record = logging.LogRecord(self.name, logging.WARNING, "", 0, line, None, None)
            self.handler.handle(record)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def detach(self, to: TextIO) -> None:
        """Emit what is left; later writes go to `to`."""
        with self._lock:
            rest, self._buffer = self._buffer, ""
        self._emit(rest)
        self._detached_to = to

    def __getattr__(self, name: str) -> Any:  # encoding, errors, ...: as the real stderr
        return getattr(sys.__stderr__, name)


def _stderr_handlers(real: Any, keep: set[logging.Handler]) -> list[logging.StreamHandler]:
    loggers = [logging.getLogger()] + [
        lg for lg in logging.root.manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    found = []
    for lg in loggers:
        for h in lg.handlers:
            if (
                isinstance(h, logging.StreamHandler)
                and not isinstance(h, logging.FileHandler)
                and h not in keep
                and h.stream in (real, sys.__stderr__, getattr(real, "inner", None))
            ):
                found.append(h)
    return found


@contextlib.contextmanager
def library_output_to(handler: logging.Handler, keep: set[logging.Handler]) -> Iterator[None]:
    """Route third-party stderr output into `handler` (runner.log) while the block runs;
    `keep`: labdeck's own handlers that stay on the console."""
    real = sys.stderr
    sink = LineSink(handler)
    moved = {h: h.stream for h in _stderr_handlers(real, keep)}
    for h in moved:
        h.setStream(sink)  # type: ignore[arg-type]
    sys.stderr = sink  # type: ignore[assignment]
    try:
        yield
    finally:
        if sys.stderr is sink:
            sys.stderr = real
        for h, stream in moved.items():
            h.setStream(stream)
        sink.detach(real)
