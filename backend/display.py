"""Rich rendering for the command line: the foreground progress view and the tables."""

from __future__ import annotations

import time
from typing import Any

from rich import box
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from .units import format_bytes, format_duration

console = Console(stderr=False, highlight=False)
err_console = Console(stderr=True, highlight=False)


def fmt_duration(seconds: float | None) -> str:
    return format_duration(seconds, "clock")


def fmt_time(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else "-"


def fmt_bytes(n: float | None) -> str:
    return format_bytes(n)


def fmt_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return "-" if v is None else str(v)


class LiveProgress:
    """Turns the run's own events into a progress bar per phase plus notable lines.

    It listens to the same events the dashboard reads, so the terminal view and the
    dashboard can never disagree about progress.
    """

    def __init__(self) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[note]}"),
            console=console,
            transient=False,
        )
        self._tasks: dict[str, Any] = {}
        self._mem = ""
        self._last_metric = ""
        self._pending: tuple[str, list[str]] | None = None

    def __enter__(self) -> LiveProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._flush_metrics()
        self.progress.stop()

    def _task(self, phase: str, total: int | None) -> Any:
        if phase not in self._tasks:
            for other in self._tasks.values():  # a new phase means the earlier ones are over
                task = self.progress.tasks[other]
                if task.total is None:
                    self.progress.update(other, total=1, completed=1)
            self._tasks[phase] = self.progress.add_task(phase, total=total, note="")
        return self._tasks[phase]

    def _say(self, text: str, style: str) -> None:
        self._flush_metrics()
        self.progress.console.print(text, style=style, markup=False)

    def _flush_metrics(self) -> None:
        """Metrics of one level/epoch/group arrive together: print them as one line."""
        if self._pending:
            where, values = self._pending
            self.progress.console.print(
                f"  {where}  " + "  ".join(values), style="green", markup=False
            )
            self._pending = None

    def __call__(self, e: dict[str, Any]) -> None:
        t = e.get("type")
        if t == "metric":
            if "step" in e:  # per-step series would flood the terminal: the latest rides on the bar
                self._last_metric = f"{e.get('name')}={fmt_value(e.get('value'))}"
                return
            where = (
                " ".join(f"{k}={e[k]}" for k in ("epoch", "level", "group") if k in e) or "final"
            )
            if self._pending and self._pending[0] != where:
                self._flush_metrics()
            if not self._pending:
                self._pending = (where, [])
            self._pending[1].append(f"{e.get('name')}={fmt_value(e.get('value'))}")
        elif t == "phase":
            self._flush_metrics()
            self._task(str(e.get("name")), e.get("total"))
        elif t == "progress":
            task = self._task(str(e.get("phase")), e.get("total"))
            note = "  ".join(x for x in (self._last_metric, self._mem) if x)
            self.progress.update(task, completed=e.get("done", 0), total=e.get("total"), note=note)
        elif t == "memory":
            devs = e.get("devices") or []
            self._mem = "  ".join(
                f"{d.get('device')} {fmt_bytes(d.get('used'))}/{fmt_bytes(d.get('total'))} ({d.get('source')})"
                for d in devs[:2]
            )
        elif t == "batch":
            self._say(f"  batch size {e.get('size')} ({e.get('reason')})", "cyan")
        elif t == "log" and e.get("level") in ("warning", "error"):
            self._say(f"  {e.get('message')}", "yellow")
        elif t == "checkpoint":
            self._say(f"  checkpoint {e.get('step')} → {e.get('path')}", "magenta")
        elif t == "error":
            self._say(f"  error: {e.get('message')}", "red")
        elif t == "status":
            self._flush_metrics()


def table(
    title: str | None,
    columns: list[str],
    rows: list[list[Any]],
    wrap: tuple[str, ...] = (),
    max_widths: dict[str, int] | None = None,
) -> Table:
    """Columns stay on one line (ellipsis when narrow) unless named in `wrap`."""
    t = Table(
        title=title, show_lines=False, header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False
    )
    for c in columns:
        width = (max_widths or {}).get(c)
        if c in wrap:
            t.add_column(c, overflow="fold", max_width=width)
        else:
            t.add_column(c, no_wrap=True, overflow="ellipsis", max_width=width)
    for r in rows:
        t.add_row(*[fmt_value(x) if not isinstance(x, str) else x for x in r])
    return t
