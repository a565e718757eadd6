"""The one error type users see, and the helpers that keep its message one short line.

Every problem caused by input (a preset, a flag, a file, a run id) is raised as a
`UserError` whose message already names *what* and *where*; the command line prints
it on one line and exits with status 2, so nothing else needs to format errors.
Messages often quote the offending input, which may be a 1 MB list or hold line
breaks: `clip` quotes a value safely and briefly, and `UserError` itself folds its
message onto one line of bounded length, so no input can flood a terminal or a log.
"""

from __future__ import annotations

import re
from typing import Any

# Longest message a UserError carries; longer ones keep their head and say so.
MAX_MESSAGE = 600
# Longest quotation of an input inside a message.
MAX_QUOTE = 80
_BREAKS = re.compile(r"\s*[\r\n\v\f\x1c-\x1e\x85\u2028\u2029]+\s*")


def one_line(text: str, limit: int = MAX_MESSAGE) -> str:
    """`text` on one line (breaks become ' | '), cut to `limit` characters."""
    flat = _BREAKS.sub(" | ", str(text)).strip(" |")
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def shorten(text: str, limit: int = MAX_QUOTE) -> str:
    """`text` itself (no quotes) on one line, cut to `limit` characters."""
    return one_line(text, limit)


def clip(value: Any, limit: int = MAX_QUOTE) -> str:
    """`repr(value)`, shortened to `limit` characters with a note of the full length.

    Safe for any value: an int too long for `repr` (Python's digit limit) or an object
    whose repr fails is still described instead of raising.
    """
    try:
        text = repr(value)
    except (ValueError, RecursionError):  # a >4300-digit int, a self-nested list
        text = f"<{type(value).__name__}>"
    if len(text) <= limit:
        return text
    return f"{text[: limit - 1]}… ({len(text)} characters)"


def describe_os_error(exc: OSError) -> str:
    """`PATH: Read-only file system (EROFS)`: the path and the errno by name, one line."""
    import errno

    name = errno.errorcode.get(exc.errno or 0, "")
    what = exc.strerror or str(exc)
    where = exc.filename if exc.filename is not None else None
    text = f"{where}: {what}" if where is not None else what
    if exc.filename2 is not None:
        text += f" (to {exc.filename2})"
    return one_line(f"{text} ({name})" if name else text)


class UserError(Exception):
    """Bad input: printed as one line, exit status 2, nothing half-written."""

    exit_code = 2

    def __init__(self, message: str = "") -> None:
        super().__init__(one_line(message))


class RunLocked(UserError):
    """Another runner holds this run directory's lock."""

    exit_code = 3
