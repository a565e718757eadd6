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
from textual.content import Content
from textual.markup import escape
from textual.screen import Screen
from textual.widgets import (
    Header,
    Input,
    SelectionList,
    Static,
    TabbedContent,
    TabPane,
)
from textual.widgets.selection_list import Selection

from labdeck.backend.display import active_seconds
from labdeck.backend.notes import read_notes
from labdeck.backend.runs import Run, short_id

from .. import fmt
from ..data import ReadBatch, RunView, pick_default
from ..plotting import (
    SMOOTHING,
    curve_of,
    cut_left,
    kind_tables,
    kind_views,
    matching,
    series_tree,
    smoothing_note,
    x_modes,
)
from ..polling import BackgroundPoll
from ..widgets.footer import PriorityFooter
from ..widgets.log_tail import LogTail
from ..widgets.metrics_table import MetricsTable, ViewTable
from ..widgets.panels import BatchPanel, MemoryPanel, PhasePanel
from ..widgets.series_plot import SeriesPlot
from .typing import typing_guard

if TYPE_CHECKING:
    from ..app import LabdeckApp

PLOT_EVERY = 1.0  # seconds between plot redraws while data streams in


class MonitorScreen(Screen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "stop", "Stop"),
        Binding("K", "kill", "Kill"),
        Binding("r", "resume", "Resume"),
        Binding("p", "reproduce", "Reproduce"),
        Binding("c", "compare", "Compare"),
        Binding("t", "tags", "Tags", priority=True),
        Binding("n", "note", "Note", priority=True),
        Binding("v", "next_view", "View"),
        Binding("x", "x_axis", "X axis"),
        Binding("m", "smooth", "Smooth"),
        Binding("z", "zoom", "Zoom"),
        Binding("slash", "filter_log", "Filter log", priority=True),
        Binding("1", "tab('tab-plots')", "Plots", show=False),
        Binding("2", "tab('tab-metrics')", "Metrics", show=False),
        Binding("3", "tab('tab-log')", "Log", show=False),
        Binding("enter", "leave_box", "Done", show=False, priority=True),
    ]
    BOX_IDS = ("log-filter",)

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
        self.x_mode = "native"
        self.smoothing = 0.0
        self.zoomed: str | None = None
        self._views = kind_views(self._kind())
        self._tables = kind_tables(self._kind())
        self.view.keep_events([t.event for t in self._tables])
        self._view_index = -1
        self._log_filter = ""

    @property
    def lab(self) -> LabdeckApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="monitor-head")
        yield Static(classes="problem", id="monitor-problem", markup=False)
        yield Static(id="monitor-compact")
        yield Input(placeholder="filter the log (text; enter keeps it)", id="log-filter")
        with Horizontal(id="monitor-body"):
            with VerticalScroll(id="monitor-left"):
                yield PhasePanel("reading…", id="phases-panel", classes="panel")
                yield MemoryPanel(id="memory-panel", classes="panel")
                yield BatchPanel(id="batch-panel", classes="panel")
            with TabbedContent(id="monitor-right", initial="tab-plots"):
                with TabPane("Plots", id="tab-plots"), Horizontal():
                    yield SelectionList[str](id="series-list")
                    yield SeriesPlot(id="plot")
                with TabPane("Metrics", id="tab-metrics"), VerticalScroll():
                    yield MetricsTable(id="metrics-table")
                    for i, spec in enumerate(self._tables):
                        yield ViewTable(spec, id=f"view-table-{i}", classes="view-table")
                with TabPane("Log", id="tab-log"):
                    yield LogTail(id="log")
        yield PriorityFooter()

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
        # The log filter box stays hidden (and out of the focus chain) until `/`.
        self.query_one("#log-filter", Input).display = False
        self.set_focus(self.query_one(TabbedContent).query_one("Tabs"))
        self._update_head()
        self._poll()
        if self.lab.monitor_interval > 0:
            self.set_interval(self.lab.monitor_interval, self._poll)
        self.set_interval(1.0, self._tick)

    def on_resize(self) -> None:
        # Below 100 columns the side panels fold into a three-line summary and the series
        # list hides (v cycles series), so the plot keeps the whole width.
        narrow = self.size.width < 100
        self.set_class(narrow, "-narrow")
        self.set_class(self.size.height < 30, "-short")
        if narrow:
            self._update_compact()
        self._plot_dirty = True
        self._last_plot = 0.0

    def _kind(self) -> str:
        try:
            return self.run_for_actions.kind
        except Exception:
            return ""

    def _update_compact(self) -> None:
        """The narrow layout's summary: progress, memory and batch size on three lines."""
        v = self.view
        lines = []
        ph = v.phases.get(v.current_phase or "") if v.current_phase else None
        if ph is not None:
            total = "?" if ph.total is None else ph.total
            stop = f" [$warning]stopped: {escape(ph.stopped)}[/]" if ph.stopped else ""
            eta = ph.eta
            eta_s = f" ETA {fmt.duration(eta)}" if eta and v.status == "running" else ""
            extra = ph.extra_text()
            extra_s = f" [dim]{escape(extra)}[/dim]" if extra and not stop else ""
            lines.append(
                f"[b]{escape(ph.name)}[/b] {fmt.bar(ph.fraction, 12)} {ph.done}/{total}{eta_s}{stop}{extra_s}"
            )
        for dev in list(v.devices.values())[:1]:
            util = f" · util {dev.util:.0f}%" if dev.util is not None else ""
            lines.append(
                f"mem {escape(dev.device)} {fmt.size(dev.used)} of {fmt.size(dev.total)} "
                f"({dev.fraction * 100:.0f}% used){util} [dim]{escape(dev.source)}[/dim]"
            )
        if v.batches:
            last = v.batches[-1]
            lines.append(f"batch size {last.size} ({escape(last.reason)})")
        self.query_one("#monitor-compact", Static).update("\n".join(lines) or "[dim]reading…[/dim]")

    # ------------------------------------------------------------------ polling

    def _read_failed(self, exc: Exception) -> ReadBatch:
        # e.g. the directory was deleted under us: say so, keep what is on screen
        return ReadBatch([], None, None, self.view.bad_lines, f"{self.view.run.path}: {exc}")

    def _apply(self, batch: ReadBatch) -> None:
        changed = self.view.apply(batch)
        first = not self._loaded
        self._loaded = True
        self._redraw(changed, first)
        if first and self.view.needs_skim:
            # After the first frame is painted: the skim's parsing holds the GIL.
            self.call_after_refresh(self._start_skim)

    def _start_skim(self) -> None:
        self.run_worker(self._read_older, thread=True, group="monitor-skim", exit_on_error=False)

    def _read_older(self) -> None:
        older = self.view.read_older()
        self.app.call_from_thread(self._merge_older, older)

    def _merge_older(self, older: list) -> None:
        self._redraw(self.view.merge_older(older), True)
        self.query_one(LogTail).rewrite(self.view, self._log_filter)

    def _redraw(self, changed: set[str], first: bool) -> None:
        if first or "state" in changed:
            self._update_head()
        if self.has_class("-narrow"):
            self._update_compact()
        if first or "phases" in changed or "state" in changed:
            self.query_one(PhasePanel).show(self.view)
        if first or "memory" in changed:
            self.query_one(MemoryPanel).show(self.view)
        if first or "batch" in changed:
            self.query_one(BatchPanel).show(self.view)
        if first or "metrics" in changed:
            self.query_one(MetricsTable).sync(self.view)
        if first or changed & {"metrics", "tables", "phases", "trajectory", "log"}:
            for table in self.query(ViewTable):
                table.sync(self.view)
        if first or "log" in changed:
            self.query_one(LogTail).sync(self.view, self._log_filter)
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
            if self.has_class("-narrow"):
                self._update_compact()
        self._maybe_plot()

    def _update_head(self) -> None:
        v = self.view
        st = v.state
        started = st.get("started") or st.get("created")
        elapsed = active_seconds(st, v.status, self.lab.clock())
        style = fmt.STATUS_STYLE.get(v.status, "")
        run = v.run
        try:
            kind, title = run.kind, run.title
        except Exception as exc:
            kind, title = "?", str(exc)
        narrow = self.app.size.width < 100
        # Titles, errors and notes are data: styled Content, never markup (`[/x]` in an
        # error would otherwise stop the screen).
        parts = [
            Content.styled(run.short_id if narrow else run.id, "bold"),
            Content(f"{kind} · {title}"),
            Content.styled(f"{fmt.STATUS_ICON.get(v.status, '')} {v.status}", style),
            Content(f"elapsed {fmt.duration(elapsed)}"),
        ]
        if not narrow:
            parts[3:3] = [Content(f"started {fmt.stamp(started)}")]
            parts.append(Content(f"{v.events_seen} events"))
        if st.get("batch_size"):
            parts.append(Content(f"batch {st['batch_size']}"))
        if st.get("last_error"):
            error = str(st["last_error"]).splitlines()[0][:120]
            parts.append(Content.styled(error, "$error"))
        if st.get("reproduction_of"):
            original = str(st["reproduction_of"])
            shown = (short_id(original) or original) if narrow else original
            parts.append(Content(f"reproduces {shown}"))
        try:
            notes = read_notes(run)
        except Exception:
            notes = None
        if notes and (notes.tags or notes.note):
            tags = " ".join("#" + t for t in notes.tags)
            parts.append(
                Content.styled(tags, "$accent")
                + Content(" ")
                + Content.styled(notes.note, "italic")
            )
        line = Content("  ").join(parts)
        if not narrow and line.cell_length > self.app.size.width - 2:
            # the full id is what pushes the line onto a second one: the short id, which
            # every verb accepts, keeps it on one
            parts[0] = Content.styled(run.short_id, "bold")
            line = Content("  ").join(parts)
        self.query_one("#monitor-head", Static).update(line)

    # ------------------------------------------------------------------ plots

    def _sync_series_list(self) -> None:
        names = self.view.series_names()
        if names == self._known_series:
            return
        lst = self.query_one("#series-list", SelectionList)
        selected = set(lst.selected)
        first = not self._known_series
        self._known_series = names
        lst.clear_options()
        # A tree by prefix (train_loss › bce): a row shows its last part, indented under
        # its group, so names are never cut in the middle. The list is 30 wide (borders
        # and the check box take 6).
        for i, row in enumerate(series_tree(names)):
            # no-break spaces: an option's leading blanks would be dropped
            indent = "\u00a0\u00a0" * row.depth + ("›\u00a0" if row.depth else "")
            label = Text(indent + cut_left(row.label, max(4, 24 - len(indent))))
            if row.name is None:
                label.stylize("dim")
                lst.add_option(Selection(label, f"group:{i}:{row.label}", False, disabled=True))
            else:
                lst.add_option(Selection(label, row.name, row.name in selected))
        if first and not selected and names:
            self._select(self._default_selection(names))

    def _default_selection(self, names: list[str]) -> list[str]:
        """The kind's first declared view that has data, else its primary metric."""
        for i, view in enumerate(self._views):
            chosen = matching(names, view.metrics)
            if chosen:
                self._view_index = i
                return chosen
        try:
            primary = self.view.run.config.get("primary_metric")
        except Exception:
            primary = None
        return [pick_default(names, primary)]

    def _select(self, names: list[str]) -> None:
        lst = self.query_one("#series-list", SelectionList)
        lst.deselect_all()
        for n in names:
            lst.select(n)
        self._plot_dirty = True
        self._last_plot = 0.0

    @on(SelectionList.SelectedChanged, "#series-list")
    def _series_changed(self) -> None:
        self._plot_dirty = True
        self._last_plot = 0.0
        self._maybe_plot()

    def _selected(self) -> list[str]:
        if self.zoomed and self.view.series(self.zoomed) is not None:
            return [self.zoomed]
        return list(self.query_one("#series-list", SelectionList).selected)

    def _maybe_plot(self) -> None:
        if not self._plot_dirty:
            return
        tabs = self.query_one(TabbedContent)
        if tabs.active != "tab-plots" or time.monotonic() - self._last_plot < PLOT_EVERY:
            return
        self._plot_dirty = False
        self._last_plot = time.monotonic()
        names = self._selected()
        plot = self.query_one(SeriesPlot)
        curves, axes = [], []
        for name in names:  # legends carry whole names
            curve, axis = curve_of(self.view, name, name, self.x_mode, self.smoothing)
            if curve is not None:
                curves.append(curve)
                axes.append(axis)
        xlabel = axes[0] if axes and all(a == axes[0] for a in axes) else "mixed axes"
        title = ""
        if 0 <= self._view_index < len(self._views) and not self.zoomed:
            title = self._views[self._view_index].title
        if not title:
            title = names[0] if len(names) == 1 else f"{len(names)} series"
        extras = [smoothing_note(curves, self.smoothing), "zoom" if self.zoomed else ""]
        plot.draw(curves, " · ".join(x for x in (title, *extras) if x), xlabel)

    # ------------------------------------------------------------------ plot controls

    def action_next_view(self) -> None:
        """Cycle the kind's declared views (then each series alone, for kinds without any)."""
        names = self.view.series_names()
        if not names:
            self.notify("no series yet", severity="warning")
            return
        self.zoomed = None
        choices = [matching(names, v.metrics) for v in self._views]
        options = [(i, c) for i, c in enumerate(choices) if c]
        if options:
            pos = next((k for k, (i, _) in enumerate(options) if i == self._view_index), -1)
            self._view_index, chosen = options[(pos + 1) % len(options)]
            self._select(chosen)
            self.notify(self._views[self._view_index].title, timeout=2)
        else:
            current = self._selected()
            idx = names.index(current[0]) if current and current[0] in names else -1
            self._select([names[(idx + 1) % len(names)]])
        self._maybe_plot()

    def action_x_axis(self) -> None:
        """x axis: as emitted (step/epoch/level), epoch, or wall time — only those the
        plotted series have (a sweep has its levels only)."""
        names = self._selected()
        modes = x_modes(self.view, names)
        if len(modes) == 1:
            self.x_mode = "native"
            axis = self.view.axis(names[0]) if names else "native"
            self.notify(f"x axis: {axis} is the only axis of these series", timeout=3)
            return
        at = modes.index(self.x_mode) if self.x_mode in modes else -1
        self.x_mode = modes[(at + 1) % len(modes)]
        self.notify(f"x axis: {self.x_mode} (of {', '.join(modes)})", timeout=2)
        self._replot()

    def action_smooth(self) -> None:
        self.smoothing = SMOOTHING[(SMOOTHING.index(self.smoothing) + 1) % len(SMOOTHING)]
        self.notify(f"smoothing: {self.smoothing:g}", timeout=2)
        self._replot()

    def action_zoom(self) -> None:
        """Show only the series under the cursor of the series list (again: all selected)."""
        if self.zoomed:
            self.zoomed = None
        else:
            lst = self.query_one("#series-list", SelectionList)
            idx = lst.highlighted
            selected = list(lst.selected)
            value = lst.get_option_at_index(idx).value if idx is not None else None
            if value is not None and not str(value).startswith("group:"):
                self.zoomed = str(value)
            elif selected:
                self.zoomed = selected[0]
        self._replot()

    def _replot(self) -> None:
        self._plot_dirty = True
        self._last_plot = 0.0
        self._maybe_plot()

    # ------------------------------------------------------------------ log filter

    def action_filter_log(self) -> None:
        self.query_one(TabbedContent).active = "tab-log"
        box = self.query_one("#log-filter", Input)
        # display set directly (not through a class) so the box can take focus at once
        # and the keys typed next go into it, not to the screen's bindings
        box.display = True
        self.set_focus(box)

    @on(Input.Changed, "#log-filter")
    def _log_filter_changed(self, event: Input.Changed) -> None:
        self._log_filter = event.value.strip()
        self.query_one(LogTail).rewrite(self.view, self._log_filter)

    def action_leave_box(self) -> None:
        self.set_focus(self.query_one(LogTail))

    @on(Input.Submitted, "#log-filter")
    def _log_filter_done(self) -> None:
        self.set_focus(self.query_one(LogTail))

    @on(TabbedContent.TabActivated)
    def _tab_changed(self) -> None:
        self._last_plot = 0.0
        self._maybe_plot()

    # ------------------------------------------------------------------ actions

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return typing_guard(self, action)

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def action_stop(self) -> None:
        self.lab.run_verb("stop", self.run_for_actions)

    def action_kill(self) -> None:
        self.lab.confirm_kill(self.run_for_actions)

    def action_tags(self) -> None:
        self.lab.edit_tags(self.run_for_actions)

    def action_note(self) -> None:
        self.lab.edit_note(self.run_for_actions)

    def action_resume(self) -> None:
        self.lab.run_verb("resume", self.run_for_actions)

    def action_reproduce(self) -> None:
        self.lab.run_verb("reproduce", self.run_for_actions)

    def action_compare(self) -> None:
        self.lab.compare_with_counterpart(self.run_for_actions)
