"""Formatting shared by every screen, so a duration or a size reads the same everywhere."""

from __future__ import annotations

from datetime import datetime

STATUS_STYLE = {
    "queued": "dim",
    "running": "bold $accent",
    "completed": "$success",
    "interrupted": "$warning",
    "failed": "bold $error",
    "crashed": "bold $error",
}

STATUS_ICON = {
    "queued": "…",
    "running": "▶",
    "completed": "✔",
    "interrupted": "‖",
    "failed": "✘",
    "crashed": "☠",
}


def size(n: float | None) -> str:
    if n is None:
        return "—"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def duration(seconds: float | None) -> str:
    if seconds is None or seconds != seconds:
        return "—"
    s = int(max(0, seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600:02d}h"


def stamp(t: float | None) -> str:
    if not t:
        return "—"
    return datetime.fromtimestamp(t).strftime("%m-%d %H:%M")


def number(v: float | None, digits: int = 4) -> str:
    if v is None:
        return "—"
    if isinstance(v, int) or (isinstance(v, float) and v.is_integer() and abs(v) < 1e12):
        return str(int(v))
    if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e6):
        return f"{v:.{digits - 1}e}"
    return f"{v:.{digits}g}" if abs(v) >= 1 else f"{v:.{digits}f}".rstrip("0")


def bar(fraction: float, width: int = 12) -> str:
    """A text progress bar for table cells (a ProgressBar widget per row would be too heavy)."""
    fraction = min(1.0, max(0.0, fraction))
    full = int(fraction * width)
    part = int((fraction * width - full) * 8)
    blocks = " ▏▎▍▌▋▊▉"
    tail = blocks[part] if full < width else ""
    return "█" * full + tail + " " * (width - full - len(tail))


def spark(values: list[float], width: int, top: float | None = None) -> str:
    """A one-line sparkline over the last `width` values (top = scale maximum)."""
    ticks = "▁▂▃▄▅▆▇█"
    vals = values[-width:]
    if not vals:
        return ""
    hi = top if top else max(vals) or 1.0
    return "".join(ticks[min(7, max(0, int(v / hi * 7.999)))] for v in vals)
