"""Keep secrets from the environment out of everything labdeck writes or prints.

Secrets are read from the environment only (TOGETHER_API_KEY, HF_TOKEN, any
*_API_KEY / *_TOKEN / *_SECRET / *_PASSWORD). A library may still echo one back, a
gateway's 401 body quoting the Authorization header, say, so `redact` is applied where
text leaves the process, at the few doors everything passes through:

- files: `jsonio.write_atomic` (state.json, summaries, every JSON file) and
  `jsonio.dumps_line` (events.jsonl, records.jsonl);
- the event stream's in-process listeners (the console progress view), in `EventWriter`;
- logs: `RedactingFormatter` on every handler of a run's logger (runner.log, console);
- the console: `redacted_streams()` wraps sys.stdout and sys.stderr for the whole CLI
  process, so prints, rich consoles, tracebacks and library output are masked too.

The dashboard only shows what those files hold, plus messages the CLI printed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
from collections.abc import Iterator
from typing import Any, TextIO

_SECRET_NAME = re.compile(r"(_API_KEY|_TOKEN|_SECRET|_PASSWORD)$|^(HF_TOKEN|TOGETHER_API_KEY)$")
MASK = "***"
_MIN_LEN = 6  # shorter values are too likely to collide with ordinary text


def is_secret_name(name: str) -> bool:
    return bool(_SECRET_NAME.search(name.upper()))


def secret_values() -> list[str]:
    """Current secret values, longest first so overlapping secrets mask fully."""
    vals = {v for k, v in os.environ.items() if is_secret_name(k) and len(v) >= _MIN_LEN}
    return sorted(vals, key=len, reverse=True)


def redact(text: str, values: list[str] | None = None) -> str:
    for v in secret_values() if values is None else values:
        if v in text:
            text = text.replace(v, MASK)
    return text


def redact_obj(obj: Any, values: list[str] | None = None) -> Any:
    """`obj` with every string inside it (keys too) redacted; unchanged objects are returned
    as they are, so the common case (no secret anywhere) allocates nothing new."""
    values = secret_values() if values is None else values
    if not values:
        return obj
    if isinstance(obj, str):
        return redact(obj, values)
    if isinstance(obj, dict):
        return {redact_obj(k, values): redact_obj(v, values) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(redact_obj(v, values) for v in obj)
    if isinstance(obj, BaseException):
        return redact(str(obj), values)
    return obj


class RedactingFormatter(logging.Formatter):
    """Masks secrets in the finished line, message and traceback alike."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class RedactingStream:
    """A text stream that masks secrets in everything written to it, delegating the rest
    (isatty, fileno, encoding: what rich and the terminal driver ask) to the stream it wraps.

    Text is masked per write: every writer here hands over whole lines or whole renders,
    so a secret is never split across two writes.
    """

    def __init__(self, inner: TextIO) -> None:
        self.inner = inner

    def write(self, text: str) -> int:
        self.inner.write(redact(text))
        return len(text)

    def flush(self) -> None:
        self.inner.flush()

    def isatty(self) -> bool:
        return self.inner.isatty()

    def fileno(self) -> int:
        return self.inner.fileno()

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@contextlib.contextmanager
def redacted_streams() -> Iterator[None]:
    """sys.stdout and sys.stderr masked for the duration (the whole CLI process)."""
    saved = sys.stdout, sys.stderr
    if not isinstance(sys.stdout, RedactingStream):
        sys.stdout = RedactingStream(sys.stdout)  # type: ignore[assignment]
    if not isinstance(sys.stderr, RedactingStream):
        sys.stderr = RedactingStream(sys.stderr)  # type: ignore[assignment]
    try:
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        sys.stdout, sys.stderr = saved


def refuse_secret_values(flat_params: dict[str, object], where: str) -> None:
    """Parameters are written to config.json in clear: a secret's value among them is refused."""
    from .errors import UserError

    by_value = {v: k for k, v in os.environ.items() if is_secret_name(k) and len(v) >= _MIN_LEN}
    for key, value in flat_params.items():
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, str) and any(secret in v for secret in by_value):
                name = next(by_value[s] for s in by_value if s in v)
                raise UserError(
                    f"{where}: params.{key} holds the value of ${name}; secrets come from the "
                    "environment only and are never written to a run directory"
                )
