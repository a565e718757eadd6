"""Parameter types that several kinds share, with every check that needs no weights.

A model name is the most common input of a kind; declaring it once here means every
kind refuses the same bad values the same way (control characters, a local path that
does not exist) at validation, before a run directory exists.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

from ..models import EMBEDDED
from .spec import Input

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(value: str) -> str:
    """Refuse control characters (a pasted newline, an escape sequence, a NUL byte)."""
    bad = _CONTROL.search(value)
    if bad:
        raise ValueError(
            f"control character {bad.group()!r} at position {bad.start()}; "
            "expected a hub id, a local folder or an embedded alias"
        )
    return value


# A Hugging Face id (`org/name`), a local model folder, or an embedded alias (`smollm2-135m`).
# A value shaped like a path must exist (backend/inputs.py); a hub id is resolved at load.
ModelName = Annotated[
    str, AfterValidator(printable), Input("dir", hub_ok=True, builtin=tuple(EMBEDDED))
]
