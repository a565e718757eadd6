"""Bytes and durations as people read them: the one formatter for the command line, the
dry-run estimates and the dashboard (no torch, no rich: tui/ imports it freely)."""

from __future__ import annotations

import math
from typing import Literal

_BYTE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def _missing(x: float | None) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def format_bytes(n: float | None, missing: str = "-") -> str:
    """`512 B`, `1.5 KiB`, … `3.2 TiB` (binary units); `missing` for None or NaN."""
    if _missing(n):
        return missing
    value = float(n)  # type: ignore[arg-type]
    for unit in _BYTE_UNITS:
        if abs(value) < 1024 or unit == _BYTE_UNITS[-1]:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def format_duration(
    seconds: float | None, style: Literal["clock", "compact"] = "clock", missing: str = "-"
) -> str:
    """A duration in one of two styles, `missing` for None or NaN.

    - "clock" (`1:02:03`, `2:03`): tables and the progress view; a negative duration is
      unknown (`missing`).
    - "compact" (`45s`, `3m05s`, `2h05m`, `1d03h`): narrow cells and estimates; a negative
      duration (clock skew between hosts) reads as `0s`.
    """
    if _missing(seconds):
        return missing
    if style == "clock":
        if seconds < 0:  # type: ignore[operator]
            return missing
        h, rem = divmod(int(seconds), 3600)  # type: ignore[arg-type]
        m, s = divmod(rem, 60)
        return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
    s = int(max(0.0, seconds))  # type: ignore[type-var]
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600:02d}h"


def format_number(v: object, digits: int = 4, missing: str = "-") -> str:
    """A number for a person: `digits` significant digits (0.10352802366156995 ->
    0.1035), integers whole, scientific notation only for very small or large values.

    One function for the dashboard and the command line, so a value reads the same in
    `labdeck show`, the live progress lines and every table of the dashboard."""
    if v is None:
        return missing
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, int):
        return str(v)
    if not isinstance(v, float):
        return str(v)
    if math.isnan(v) or math.isinf(v):
        return str(v)
    if v.is_integer() and abs(v) < 1e12:
        return str(int(v))
    a = abs(v)
    if a < 1e-3 or a >= 1e6:
        return f"{v:.{digits - 1}e}"
    if a >= 10**digits:
        return f"{v:.0f}"
    return f"{v:.{digits}g}"
