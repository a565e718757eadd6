"""The Runs table's columns: fixed ones by priority, plus one per parameter that differs
among the listed runs, fitted to the terminal's width.

Widths are fixed so a value that appears later (an ETA, a CPU reading) never squeezes
into a column sized for "—". Statuses are drawn compactly (icon counts for a group, the
scheduler's state abbreviated) so the status column never cuts a word at 120 columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.style import Style
from rich.text import Text

from . import fmt

PARAM_PREFIX = "p:"


@dataclass(frozen=True)
class Column:
    """A Runs table column: kept by `priority` (lower first) when the terminal is narrow;
    `short` is its header when the table is tight."""

    key: str
    label: str
    short: str
    priority: float
    width: int
    narrow_width: int | None = None


COLUMNS = (
    Column("mark", " ", " ", 0, 1),
    Column("id", "id", "id", 0, 10),
    Column("status", "status", "st", 1, 16, 3),  # room for a group's counts: ▶ running 2▶ 1✔
    Column("progress", "progress", "prog", 1, 12, 10),
    Column("title", "title", "title", 2, 16, 14),
    Column("metric", "key metric", "metric", 3, 18, 12),
    Column("duration", "duration", "time", 4, 8, 7),
    # the runner's own CPU and memory, like nvitop's process list
    Column("cpu", "CPU", "CPU", 5, 6, 5),
    Column("rss", "RSS", "RSS", 5, 9, 8),
    Column("kind", "kind", "kind", 6, 11, 6),
    Column("eta", "ETA", "ETA", 7, 8, 7),
    Column("started", "started", "start", 8, 11),
    Column("tags", "tags", "tags", 9, 18),
)
SORTS = ("started", "status", "kind", "title", "duration", "metric", "progress")
STATUS_FILTERS = ("running", "completed", "interrupted", "failed", "crashed", "queued")
PARAM_WIDTH = 12


def param_column(name: str, values: list[str]) -> Column:
    """A column for parameter `name`, as wide as its longest value (up to PARAM_WIDTH);
    the header keeps the end of a dotted name (`optim.lr` → `lr`), where it differs."""
    header = name.rsplit(".", 1)[-1]
    width = max([len(header), *(len(v) for v in values), 3])
    return Column(PARAM_PREFIX + name, header, header[:8], 3.5, min(width, PARAM_WIDTH), 8)


SCHEDULER_STATUS_WIDTH = 28  # "▶ running slurm 12345_6 RUNNING"


def fit_columns(
    width: int, params: tuple[Column, ...] = (), status_width: int | None = None
) -> list[tuple[Column, int, str]]:
    """The columns that fit in `width` cells, by priority, in display order, with the
    width and header each gets (narrow widths and short headers below 100 columns).
    Parameter columns follow the title; `status_width` widens the status column (for
    a scheduler's job id and state)."""
    narrow = width < 100
    columns = COLUMNS
    if status_width and not narrow:
        columns = tuple(
            Column(c.key, c.label, c.short, c.priority, status_width, c.narrow_width)
            if c.key == "status"
            else c
            for c in COLUMNS
        )
    everything = (*columns[:5], *params, *columns[5:])
    chosen: set[str] = set()
    budget = width - 2  # the vertical scrollbar
    for col in sorted(everything, key=lambda c: c.priority):
        w = (col.narrow_width or col.width) if narrow else col.width
        if w + 2 <= budget:  # one cell of padding each side
            chosen.add(col.key)
            budget -= w + 2
    # what is left widens the status column (a Slurm state, a group's counts)
    extra = max(0, min(budget - 2, 8)) if not narrow else 0
    out = []
    for c in everything:
        if c.key not in chosen:
            continue
        w = (c.narrow_width or c.width) if narrow else c.width
        out.append((c, w + (extra if c.key == "status" else 0), c.short if narrow else c.label))
    return out


def status_text(status: str, theme: dict[str, str]) -> Text:
    """Status cell coloured from the current theme (DataTable cells take Rich styles)."""
    color = {
        "running": theme.get("accent"),
        "completed": theme.get("success"),
        "interrupted": theme.get("warning"),
        "failed": theme.get("error"),
        "crashed": theme.get("error"),
    }.get(status)
    style = Style(color=color, bold=status in ("running", "crashed", "failed"))
    return Text(f"{fmt.STATUS_ICON.get(status, '?')} {status}", style=style)


def status_cell(status: str, theme: dict[str, str], width: int, extra: str = "") -> Text:
    """The status in `width` cells: the word when it fits, else the icon; `extra` (a
    scheduler state, a group's counts) follows dimmed only where it fits whole."""
    text = status_text(status, theme)
    if len(text.plain) > width:
        return Text(fmt.STATUS_ICON.get(status, "?"), style=text.style)
    if extra and len(text.plain) + 1 + len(extra) <= width:
        text.append(" " + extra, style=Style(dim=True))
    return text


def counts_text(counts: dict[str, int]) -> str:
    """A group's member statuses as icon counts: `2▶ 1○ 3✔` (○ queued)."""
    order = ("running", "queued", "crashed", "failed", "interrupted", "completed")
    icons = {**fmt.STATUS_ICON, "queued": "○"}  # "…" would read as a cut-off cell here
    return " ".join(f"{counts[s]}{icons.get(s, '?')}" for s in order if counts.get(s))


def scheduler_text(row: Any, theme: dict[str, str], width: int = 99) -> Text:
    """Status plus, for a Slurm run, the scheduler's state where it fits whole; a run
    whose local queue died says so (`labdeck resume` restarts it)."""
    if getattr(row, "queue_gone", False):
        text = "○ queue gone" if width >= 12 else "○ gone"
        return Text(text, style=Style(color=theme.get("warning"), bold=True))
    if not row.scheduler:
        return status_cell(row.status, theme, width)
    for extra in (f"slurm {row.scheduler}", row.scheduler, row.scheduler.split()[-1]):
        if len(f"{row.status} {extra}") + 2 <= width:
            break
    return status_cell(row.status, theme, width, extra)
