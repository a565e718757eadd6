"""Keep secrets from the environment out of everything labdeck writes.

Secrets are read from the environment only (TOGETHER_API_KEY, HF_TOKEN, any
*_API_KEY / *_TOKEN / *_SECRET). Every writer (events, records, runner.log) passes its
text through `redact`, so a secret echoed by a library in an error message is still
masked on disk.
"""

from __future__ import annotations

import logging
import os
import re

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


class RedactingFilter(logging.Filter):
    """Masks secrets in log records before any handler formats them."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        clean = redact(msg)
        if clean != msg:
            record.msg, record.args = clean, None
        return True


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
