"""Rich rendering for the command line: the foreground progress view and the tables."""

from __future__ import annotations

import time
from collections.abc import Callable
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
from rich.text import Text

from .units import format_bytes, format_duration, format_number


def _console(stderr: bool) -> Console:
    """A terminal gets tables fitted to its width; a pipe or file gets every value whole
    (no ellipsis, no 80-column wrap), since a script reads what is printed."""
    probe = Console(stderr=stderr)
    if probe.is_terminal:
        return Console(stderr=stderr, highlight=False)
    return Console(stderr=stderr, highlight=False, width=PIPE_WIDTH, no_color=True)


PIPE_WIDTH = 10_000
console = _console(stderr=False)
err_console = _console(stderr=True)


def piped() -> bool:
    """True when stdout is not a terminal: print full values (ids, times) for scripts."""
    return not console.is_terminal


def labelled(label: str, text: Any, style: str = "red") -> Text:
    """`label` in `style`, then `text` exactly as it is. Error text, titles and parameter
    values are data: printed through rich markup, `[/x]` would crash the command and
    `[red]` would vanish, so they are only ever printed as `Text`."""
    return Text.assemble((label, style), " ", str(text))


def fmt_duration(seconds: float | None) -> str:
    return format_duration(seconds, "clock")


def fmt_time(ts: float | None, full: bool | None = None) -> str:
    """Minutes on a terminal; the full ISO time with seconds and offset when piped."""
    if not ts:
        return "-"
    full = piped() if full is None else full
    return time.strftime("%Y-%m-%dT%H:%M:%S%z" if full else "%Y-%m-%d %H:%M", time.localtime(ts))


def fmt_bytes(n: float | None) -> str:
    return format_bytes(n)


def fmt_value(v: Any, digits: int = 4) -> str:
    """Significant digits, not every digit a float holds (see units.format_number);
    comparison tables ask for 6, enough to show a difference at a 1e-3 tolerance."""
    return format_number(v, digits)


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
            TextColumn("{task.fields[note]}", markup=False),  # metric names like ppl[attn]
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


class PlainProgress:
    """Progress as plain lines for a log file or a pipe (no cursor movement, no redraws):
    each phase, then a line at every 10 % or 10 s, batch changes, warnings and metrics."""

    def __init__(self, write: Callable[[str], None] | None = None, every: float = 10.0) -> None:
        self.write = write or (lambda line: print(line, flush=True))
        self.every = every
        self._phase: str | None = None
        self._total: int | None = None
        self._last_pct = -1
        self._last_t = 0.0
        self._t0 = time.monotonic()

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def _line(self, text: str) -> None:
        self.write(f"[{fmt_duration(time.monotonic() - self._t0)}] {text}")

    def __call__(self, e: dict[str, Any]) -> None:
        t = e.get("type")
        if t == "phase":
            self._phase, self._total, self._last_pct = str(e.get("name")), e.get("total"), -1
            self._line(f"phase {self._phase}" + (f" ({self._total} units)" if self._total else ""))
        elif t == "progress":
            done, total = int(e.get("done") or 0), e.get("total") or self._total
            pct = int(100 * done / total) if total else 0
            now = time.monotonic()
            if (pct // 10 > self._last_pct // 10) or now - self._last_t >= self.every:
                self._last_pct, self._last_t = pct, now
                of = f"/{total} ({pct}%)" if total else ""
                left = e.get("eta_seconds")
                eta = f" ~{fmt_duration(left)} left" if left and total and done < total else ""
                self._line(f"{e.get('phase') or self._phase} {done}{of}{eta}")
        elif t == "batch":
            self._line(f"batch size {e.get('size')} ({e.get('reason')})")
        elif t == "metric" and "step" not in e:
            where = " ".join(f"{k}={e[k]}" for k in ("epoch", "level", "group") if k in e)
            self._line(f"{where} {e.get('name')}={fmt_value(e.get('value'))}".strip())
        elif t == "log" and e.get("level") in ("warning", "error"):
            self._line(f"{e.get('level')}: {e.get('message')}")
        elif t == "checkpoint":
            self._line(f"checkpoint {e.get('step')} -> {e.get('path')}")
        elif t == "error":
            self._line(f"error: {e.get('message')}")
        elif t == "status":
            self._line(f"status {e.get('status')}")


def table(
    title: str | None,
    columns: list[str],
    rows: list[list[Any]],
    wrap: tuple[str, ...] = (),
    max_widths: dict[str, int] | None = None,
) -> Table:
    """Columns stay on one line (ellipsis when narrow) unless named in `wrap`. A str cell
    is read as markup when printed with markup on; data cells are `Text` (see `labelled`)."""
    # A pipe gets plain aligned columns (no rule, no blank edge lines) for awk and cut.
    t = Table(
        title=title,
        show_lines=False,
        header_style="bold",
        box=None if piped() else box.SIMPLE_HEAD,
        pad_edge=False,
        min_width=len(title) + 2 if title else None,  # a title never wraps onto two lines
        title_justify="left" if piped() else "center",  # centred over wide rows: padding
    )
    for c in columns:
        width = None if piped() else (max_widths or {}).get(c)
        if c in wrap:
            t.add_column(c, overflow="fold", max_width=width)
        else:
            t.add_column(c, no_wrap=True, overflow="ellipsis", max_width=width)
    for r in rows:
        t.add_row(*[x if isinstance(x, str | Text) else fmt_value(x) for x in r])
    return t


# --------------------------------------------------------------------------- run state


def main_phase(state: dict[str, Any]) -> tuple[str | None, int | None, int | None, str | None]:
    """(phase, done, total, stop reason) of what a run is doing, or how it ended.

    A run at work shows the phase it is in now with that phase's counts (a feedback run
    judging shows `evaluate 3/10`, not the finished `process 10/10` before it). A run
    whose last phase is over (a completed run) shows its end: that last phase, unless
    an earlier phase stopped early, which is then how the run ended (`train 34/80
    stopped early`, not the 1-unit eval phase that follows).
    """
    phases = state.get("phases") if isinstance(state.get("phases"), dict) else {}
    phases = {n: i for n, i in phases.items() if isinstance(i, dict)}
    current = state.get("phase") or (list(phases)[-1] if phases else None)
    if current is None:
        return None, state.get("done"), state.get("total"), None
    info = phases.get(current, {})
    if state.get("phase") == current:
        done, total = state.get("done"), state.get("total")
    else:
        done, total = info.get("done"), info.get("total")
    over = state.get("status") == "completed" or (
        total is not None and done is not None and done >= total
    )
    stopped = [(n, i) for n, i in phases.items() if i.get("stopped")]
    if over and stopped and current not in dict(stopped):
        name, info = stopped[-1]
        return name, info.get("done"), info.get("total"), info.get("stopped")
    return current, done, total, info.get("stopped")


def eta_seconds(
    state: dict[str, Any], now: float | None = None, status: str | None = None
) -> float | None:
    """Seconds the current phase still needs, as the runner last estimated them, less
    the time since (None when unknown or the run is not running). `status`: the status
    shown, when it differs from state.json's (a `running` run whose runner died)."""
    left, at = state.get("eta_seconds"), state.get("eta_at")
    running = (status or state.get("status")) == "running"
    if not running or not isinstance(left, int | float) or not at:
        return None
    now = time.time() if now is None else now
    return max(0.0, float(left) - max(0.0, now - float(at)))


def active_seconds(state: dict[str, Any], status: str, now: float | None = None) -> float | None:
    """Time spent running, over every attempt: the hours a run sat stopped do not count.

    Older runs without `active_seconds` fall back to ended - started.
    """
    now = time.time() if now is None else now
    started = state.get("started")
    if not started:
        return None
    before = state.get("active_before")
    attempt = state.get("attempt_started")
    if status == "running" and attempt:
        return float(before or 0.0) + max(0.0, now - attempt)
    if status == "crashed" and attempt:
        return float(before or 0.0) + max(0.0, float(state.get("heartbeat") or attempt) - attempt)
    if state.get("active_seconds") is not None:
        return float(state["active_seconds"])
    end = state.get("ended") or state.get("heartbeat") or now
    return max(0.0, end - started)


def progress_text(
    state: dict[str, Any], now: float | None = None, status: str | None = None
) -> str:
    """`evaluate 3/10 ~1:20 left` / `train 34/80 stopped early` / `-`: for `ls` and tables
    (`status` as in `eta_seconds`: a crashed run has no time left)."""
    name, done, total, stopped = main_phase(state)
    if not done and not total:
        return name or "-"  # a phase of unknown length (`load`) that has counted nothing
    text = f"{done or 0}/{total}" if total else str(done)
    if name:
        text = f"{name} {text}"
    if stopped:
        return f"{text} stopped early"
    left = eta_seconds(state, now, status)
    if left is not None and total and (done or 0) < total:
        text += f" ~{fmt_duration(left)} left"
    return text
