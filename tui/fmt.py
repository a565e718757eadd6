"""Formatting shared by every screen, so a duration or a size reads the same everywhere."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text

from labdeck.backend.units import format_bytes, format_duration, format_number

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
    return format_bytes(n, missing="—")


def duration(seconds: float | None) -> str:
    return format_duration(seconds, "compact", missing="—")


def stamp(t: float | None) -> str:
    if not t:
        return "—"
    return datetime.fromtimestamp(t).strftime("%m-%d %H:%M")


def number(v: float | None, digits: int = 4) -> str:
    """Significant digits, as the command line prints them (backend.units.format_number)."""
    return format_number(v, digits, missing="—")


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


def counted(n: int, noun: str) -> str:
    """'1 run', '3 runs': a count with its noun in the right number."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def packed(entries: list[Text], width: int, gap: int = 2) -> Text:
    """Entries side by side, a new line where the next one would not fit: a legend
    entry (swatch, id, parameters) is read as one thing and never split across lines.
    An entry wider than the line keeps a line of its own and wraps there."""
    out = Text()
    used = 0
    for entry in entries:
        n = entry.cell_len
        if used and used + gap + n > width:
            out.append("\n")
            used = 0
        elif used:
            out.append(" " * gap)
            used += gap
        out.append_text(entry)
        used += n
    return out
