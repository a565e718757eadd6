"""Monitor: one run, live — progress, memory, batch size, metrics, plots, log.

The same screen follows a run that is still being written and shows one that
finished long ago: it polls the run's files on a timer, reads in a worker thread,
and folds what it read into a `RunView` on the UI thread.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.markup import escape
from textual.screen import Screen
from textual.widgets import (
    Footer,
    Header,
    SelectionList,
    Static,
    TabbedContent,
    TabPane,
)

from labdeck.backend.runs import Run

from .. import fmt
from ..data import ReadBatch, RunView, pick_default
from ..polling import BackgroundPoll
from ..widgets.log_tail import LogTail
from ..widgets.metrics_table import MetricsTable
from ..widgets.panels import BatchPanel, MemoryPanel, PhasePanel
from ..widgets.series_plot import Curve, SeriesPlot

if TYPE_CHECKING:
    from ..app import LabdeckApp

PLOT_EVERY = 1.0  # seconds between plot redraws while data streams in


class MonitorScreen(Screen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "stop", "Stop"),
        Binding("r", "resume", "Resume"),
        Binding("p", "reproduce", "Reproduce"),
        Binding("c", "compare", "Compare w/ repro"),
        Binding("1", "tab('tab-plots')", "Plots"),
        Binding("2", "tab('tab-metrics')", "Metrics"),
        Binding("3", "tab('tab-log')", "Log"),
    ]

    def __init__(self, run: Run) -> None:
        super().__init__()
        self.run_for_actions = run
        self.view = RunView(run)
        self._poll = BackgroundPoll(
            self, lambda: self.view.read(), self._apply, "monitor-read", on_error=self._read_failed
        )
        self._loaded = False
        self._plot_dirty = True
        self._last_plot = 0.0
        self._known_series: list[str] = []

    @property
    def lab(self) -> LabdeckApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="monitor-head")
        yield Static(classes="problem", id="monitor-problem", markup=False)
        with Horizontal(id="monitor-body"):
            with VerticalScroll(id="monitor-left"):
                yield PhasePanel("reading…", id="phases-panel", classes="panel")
                yield MemoryPanel(id="memory-panel", classes="panel")
                yield BatchPanel(id="batch-panel", classes="panel")
            with TabbedContent(id="monitor-right", initial="tab-plots"):
                with TabPane("Plots", id="tab-plots"), Horizontal():
                    yield SelectionList[str](id="series-list")
                    yield SeriesPlot(id="plot")
                with TabPane("Metrics", id="tab-metrics"):
                    yield MetricsTable(id="metrics-table")
                with TabPane("Log", id="tab-log"):
                    yield LogTail(id="log")
        yield Footer()

    def on_mount(self) -> None:
        run = self.run_for_actions
        self.title = f"labdeck · {run.short_id}"
        self.sub_title = run.id
        for pid, title in (
            ("#phases-panel", "progress"),
            ("#memory-panel", "memory"),
            ("#batch-panel", "batch size"),
            ("#series-list", "series"),
        ):
            self.query_one(pid).border_title = title
        self._update_head()
        self._poll()
        if self.lab.monitor_interval > 0:
            self.set_interval(self.lab.monitor_interval, self._poll)
        self.set_interval(1.0, self._tick)

    def on_resize(self) -> None:
        # 80x24 terminals (an SSH default) get narrower side columns so the plot keeps room.
        self.set_class(self.size.width < 100, "-narrow")

    # ------------------------------------------------------------------ polling

    def _read_failed(self, exc: Exception) -> ReadBatch:
        # e.g. the directory was deleted under us: say so, keep what is on screen
        return ReadBatch([], None, None, self.view.bad_lines, f"{self.view.run.path}: {exc}")

    def _apply(self, batch: ReadBatch) -> None:
        changed = self.view.apply(batch)
        first = not self._loaded
        self._loaded = True
        if first and self.view.needs_skim:
            self.run_worker(
                self._read_older, thread=True, group="monitor-skim", exit_on_error=False
            )
        self._redraw(changed, first)

    def _read_older(self) -> None:
        older = self.view.read_older()
        self.app.call_from_thread(self._merge_older, older)

    def _merge_older(self, older: list) -> None:
        self._redraw(self.view.merge_older(older), True)
        self.query_one(LogTail).rewrite(self.view)

    def _redraw(self, changed: set[str], first: bool) -> None:
        if first or "state" in changed:
            self._update_head()
        if first or "phases" in changed or "state" in changed:
            self.query_one(PhasePanel).show(self.view)
        if first or "memory" in changed:
            self.query_one(MemoryPanel).show(self.view)
        if first or "batch" in changed:
            self.query_one(BatchPanel).show(self.view)
        if first or "metrics" in changed:
            self.query_one(MetricsTable).sync(self.view)
        if first or "log" in changed:
            self.query_one(LogTail).sync(self.view)
        if first or "problem" in changed:
            problem = self.view.problem_line()
            widget = self.query_one("#monitor-problem", Static)
            widget.update(problem or "")
            widget.set_class(bool(problem), "-show")
        if first or changed & {"metrics", "trajectory"}:
            self._sync_series_list()
            self._plot_dirty = True
            self._maybe_plot()

    def _tick(self) -> None:
        """Once a second: elapsed time and ETA move without any file changing."""
        if self.view.status == "running":
            self._update_head()
            self.query_one(PhasePanel).show(self.view)
        self._maybe_plot()

    def _update_head(self) -> None:
        v = self.view
        st = v.state
        started = st.get("started") or st.get("created")
        end = st.get("ended") if v.status != "running" else None
        elapsed = ((end or self.lab.clock()) - started) if started else None
        style = fmt.STATUS_STYLE.get(v.status, "")
        run = v.run
        try:
            kind, title = run.kind, run.title
        except Exception as exc:
            kind, title = "?", str(exc)
        parts = [
            f"[b]{escape(run.id)}[/b]",
            f"{escape(kind)} · {escape(title)}",
            f"[{style}]{fmt.STATUS_ICON.get(v.status, '')} {v.status}[/]",
            f"started {fmt.stamp(started)}",
            f"elapsed {fmt.duration(elapsed)}",
            f"{v.events_seen} events",
        ]
        if st.get("batch_size"):
            parts.append(f"batch {st['batch_size']}")
        if st.get("last_error"):
            parts.append(f"[$error]{escape(str(st['last_error']).splitlines()[0][:120])}[/]")
        if st.get("reproduction_of"):
            parts.append(f"reproduces {escape(str(st['reproduction_of']))}")
        self.query_one("#monitor-head", Static).update("  ".join(parts))

    # ------------------------------------------------------------------ plots

    def _sync_series_list(self) -> None:
        names = self.view.series_names()
        if names == self._known_series:
            return
        lst = self.query_one("#series-list", SelectionList)
        selected = set(lst.selected)
        first = not self._known_series
        new = [n for n in names if n not in self._known_series]
        for name in new:
            lst.add_option((Text(name), name, False))  # names like "ppl[attn]" are not markup
        self._known_series = names
        if first and not selected and names:
            lst.select(self._default_series(names))

    def _default_series(self, names: list[str]) -> str:
        try:
            primary = self.view.run.config.get("primary_metric")
        except Exception:
            primary = None
        return pick_default(names, primary)

    @on(SelectionList.SelectedChanged, "#series-list")
    def _series_changed(self) -> None:
        self._plot_dirty = True
        self._last_plot = 0.0
        self._maybe_plot()

    def _maybe_plot(self) -> None:
        if not self._plot_dirty:
            return
        tabs = self.query_one(TabbedContent)
        if tabs.active != "tab-plots" or time.monotonic() - self._last_plot < PLOT_EVERY:
            return
        self._plot_dirty = False
        self._last_plot = time.monotonic()
        names = list(self.query_one("#series-list", SelectionList).selected)
        curves = []
        for name in names:
            s = self.view.series(name)
            if s is not None:
                xs, ys = s.points()
                curves.append(Curve(name, xs, ys))
        xlabel = "epoch" if all(n.startswith("trajectory:") for n in names) and names else ""
        self.query_one(SeriesPlot).draw(curves, ", ".join(names)[:80], xlabel)

    @on(TabbedContent.TabActivated)
    def _tab_changed(self) -> None:
        self._last_plot = 0.0
        self._maybe_plot()

    # ------------------------------------------------------------------ actions

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def action_stop(self) -> None:
        self.lab.run_verb("stop", self.run_for_actions)

    def action_resume(self) -> None:
        self.lab.run_verb("resume", self.run_for_actions)

    def action_reproduce(self) -> None:
        self.lab.run_verb("reproduce", self.run_for_actions)

    def action_compare(self) -> None:
        self.lab.compare_with_counterpart(self.run_for_actions)
