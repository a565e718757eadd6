"""Overlay: the selected runs' metrics in a paged grid of charts on shared axes.

Any number of runs (marked with space, a group, or one run and the pinned baseline);
one colour per run wherever it appears, the baseline drawn on top; a glob picks the
metrics; `m` folds runs that differ only in seed into their mean with a min–max band.
Runs are read in a thread; a finished run is read once, a live one every few seconds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid
from textual.screen import Screen
from textual.widgets import Header, Input, Static

from labdeck.backend.paramcols import differing_params, fmt_param, params_of
from labdeck.backend.runs import Run

from .. import fmt
from ..data import RunView
from ..overlay import lines_for, metric_names, page_of, run_colours, seed_sets
from ..polling import BackgroundPoll
from ..widgets.footer import PriorityFooter
from ..widgets.overlay_chart import OverlayChart
from .typing import typing_guard

if TYPE_CHECKING:
    from ..app import LabdeckApp

LIVE = ("running", "queued")
PREFETCH_PAUSE = 0.02  # seconds between two prefetched charts: keys are served between


def rich_colour(colour: Any) -> str:
    """A run's colour for Rich (the legend): RGB tuples as `rgb(r,g,b)`."""
    if isinstance(colour, tuple):
        return "rgb({},{},{})".format(*colour)
    return str(colour)


class OverlayScreen(Screen):
    """A rows × columns grid of charts, one metric each, every selected run overlaid."""

    DEFAULT_CSS = """
    OverlayScreen #overlay-head { height: 1; padding: 0 1; }
    OverlayScreen #overlay-glob { height: 1; border: none; padding: 0 1; }
    OverlayScreen #overlay-grid { height: 1fr; grid-gutter: 0 1; }
    OverlayScreen #overlay-legend { height: auto; max-height: 4; padding: 0 1; }
    OverlayScreen OverlayChart { height: 1fr; min-height: 6; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "search", "Metric filter", priority=True),
        Binding("n,pagedown", "page(1)", "Next page"),
        Binding("p,pageup", "page(-1)", "Prev page"),
        Binding("right_square_bracket", "cols(1)", "More columns"),
        Binding("left_square_bracket", "cols(-1)", "Fewer columns"),
        Binding("plus", "rows(1)", "More rows", show=False),
        Binding("minus", "rows(-1)", "Fewer rows", show=False),
        Binding("m", "fold_seeds", "Mean of seeds"),
        Binding("enter", "leave_box", "Done", show=False, priority=True),
    ]
    BOX_IDS = ("overlay-glob",)
    AUTO_FOCUS = None  # keys go to the screen until `/` opens the filter

    def __init__(self, runs: list[Run], pinned: str | None = None) -> None:
        super().__init__()
        self.runs = runs
        self.pinned = pinned if any(r.id == pinned for r in runs) else None
        self.views = {r.id: RunView(r) for r in runs}
        self.colours = run_colours([r.id for r in runs])
        self.glob = ""
        self.rows, self.cols = 2, 2
        self.page = 0
        self.fold = False
        self._loaded = False
        self._generation = 0  # of the neighbouring pages' prefetch
        self._params = {r.id: _params(r) for r in runs}
        differing = differing_params(list(self._params.values()))
        self.labels = {
            r.id: " ".join(
                [r.short_id]
                + [
                    f"{n.rsplit('.', 1)[-1]}={fmt_param(self._params[r.id].get(n), 10)}"
                    for n in differing[:3]
                ]
            )
            for r in runs
        }
        self.sets = seed_sets(self._params, differing)
        self._primary = {_primary(r) for r in runs} - {None}
        self._poller = BackgroundPoll(self, self._read, self._apply, "overlay-read")

    @property
    def lab(self) -> LabdeckApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="overlay-head")
        yield Input(placeholder="metric filter: a glob (*loss*) or a word  (/)", id="overlay-glob")
        yield Grid(id="overlay-grid")
        yield Static(id="overlay-legend")
        yield PriorityFooter()

    def on_mount(self) -> None:
        self.title = f"labdeck · overlay of {fmt.counted(len(self.runs), 'run')}"
        self.narrow = self.app.size.width < 100
        if self.app.size.height < 30 or self.narrow:
            self.rows, self.cols = 1, 2
        self._layout()
        self.set_focus(self.query_one("#overlay-grid", Grid))
        self._poller()
        interval = max(self.lab.monitor_interval * 4, 2.0) if self.lab.monitor_interval else 0
        if interval:
            self.set_interval(interval, self._poll_live)

    # ------------------------------------------------------------------ data

    def _poll_live(self) -> None:
        if any(v.status in LIVE for v in self.views.values()):
            self._poller()

    def _read(self) -> None:
        for view in self.views.values():
            try:
                view.poll()
            except Exception as exc:  # one unreadable run must not blank the others
                view.problem = f"{view.run.path}: {exc}"

    def _apply(self, _: None) -> None:
        self._loaded = True
        self._draw()

    def names(self) -> list[str]:
        """Matching series names, the runs' primary metrics first."""
        every = [n for v in self.views.values() for n in v.series_names()]
        names = metric_names(every, self.glob)
        first = [n for n in names if n.split("[", 1)[0] in self._primary]
        return first + [n for n in names if n not in first]

    # ------------------------------------------------------------------ drawing

    def on_resize(self) -> None:
        if self._loaded:  # the neighbouring pages, again at the charts' new size
            self.call_after_refresh(self._prefetch)
        self.call_after_refresh(self._legend)  # entries packed for the new width

    def _layout(self) -> None:
        grid = self.query_one("#overlay-grid", Grid)
        grid.styles.grid_size_columns = self.cols
        grid.styles.grid_size_rows = self.rows
        grid.can_focus = True  # keys (and the footer) belong to the screen, not the filter
        grid.remove_children()
        grid.mount_all(OverlayChart() for _ in range(self.rows * self.cols))
        if self._loaded:  # before the first read, the read's end draws
            self.call_after_refresh(self._draw)

    def _draw(self) -> None:
        names = self.names()
        shown, self.page, pages = page_of(names, self.rows, self.cols, self.page)
        charts = list(self.query(OverlayChart))
        for i, chart in enumerate(charts):
            if i < len(shown):
                chart.display = True
                self._draw_chart(chart, shown[i])
            else:
                chart.display = i == 0 and not shown
                if chart.display:
                    chart.draw("no metric matches" if self._loaded else "reading…", [])
        what = "mean of seeds (min–max band)" if self.fold else "every run"
        head = (
            f"{fmt.counted(len(self.runs), 'run')} · {fmt.counted(len(names), 'metric')} · page {self.page + 1}/{pages} · "
            f"grid {self.rows}×{self.cols} · {what}"
        )
        if self.glob:
            head += f" · filter {self.glob}"
        problems = [v.problem_line() for v in self.views.values() if v.problem_line()]
        if problems:
            head += f" · {problems[0]}"
        self.query_one("#overlay-head", Static).update(
            Text(head, no_wrap=True, overflow="ellipsis")
        )
        self._legend()
        self._prefetch()

    def _draw_chart(self, chart: OverlayChart, name: str) -> None:
        chart.draw(*self._chart_lines(name))

    def _chart_lines(self, name: str) -> tuple[str, list, str]:
        """(title, lines, x axis) of the chart of metric `name`."""
        series = {}
        axis = ""
        for rid, view in self.views.items():
            s = view.series(name)
            if s is not None:
                series[rid] = s.points()
                axis = axis or view.axis(name)
        lines = lines_for(
            series, self.labels, self.colours, self.pinned, self.sets if self.fold else None
        )
        return name, lines, axis

    def _prefetch(self) -> None:
        """Draw the neighbouring pages off screen, one chart per idle moment, so that
        turning a page shows charts already drawn. A newer draw cancels what is left."""
        self._generation += 1
        generation = self._generation
        names = self.names()
        charts = list(self.query(OverlayChart))
        todo: list[tuple[OverlayChart, str]] = []
        for page in (self.page + 1, self.page - 1):
            shown, clamped, _ = page_of(names, self.rows, self.cols, page)
            if clamped == page:
                todo += zip(charts, shown, strict=False)

        def step() -> None:
            if generation != self._generation or not todo or not self.is_current:
                return
            chart, name = todo[0]
            if chart.size.area:  # laid out: drawn at the size it will be shown at
                todo.pop(0)
                chart.prebuild(*self._chart_lines(name))
            self.set_timer(PREFETCH_PAUSE, step)

        self.set_timer(PREFETCH_PAUSE, step)

    def _legend(self) -> None:
        entries = []
        if self.fold:
            for s in self.sets:
                entry = Text.assemble(("━━ ", rich_colour(self.colours[s.ids[0]])))
                entry.append(f"{s.label} ×{len(s.ids)}")
                entries.append(entry)
        else:
            for r in self.runs:
                entry = Text.assemble(("━━ ", rich_colour(self.colours[r.id])))
                mark = "◆ " if r.id == self.pinned else ""
                entry.append(f"{mark}{self.labels[r.id]}", style="bold" if mark else "")
                entries.append(entry)
        legend = self.query_one("#overlay-legend", Static)
        width = legend.content_size.width or self.size.width - 2
        legend.update(fmt.packed(entries, max(width, 20)))

    # ------------------------------------------------------------------ keys

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return typing_guard(self, action)

    def action_search(self) -> None:
        self.set_focus(self.query_one("#overlay-glob", Input))

    def action_leave_box(self) -> None:
        self.set_focus(self.query_one("#overlay-grid", Grid))

    @on(Input.Changed, "#overlay-glob")
    def _glob_changed(self, event: Input.Changed) -> None:
        self.glob = event.value.strip()
        self.page = 0
        self._draw()

    @on(Input.Submitted, "#overlay-glob")
    def _glob_done(self) -> None:
        self.action_leave_box()

    def action_page(self, delta: int) -> None:
        self.page += delta
        self._draw()

    def action_cols(self, delta: int) -> None:
        cols = min(4, max(1, self.cols + delta))
        if cols != self.cols:
            self.cols = cols
            self._layout()

    def action_rows(self, delta: int) -> None:
        rows = min(4, max(1, self.rows + delta))
        if rows != self.rows:
            self.rows = rows
            self._layout()

    def action_fold_seeds(self) -> None:
        self.fold = not self.fold
        self._draw()


def _primary(run: Run) -> str | None:
    try:
        value = run.config.get("primary_metric")
    except Exception:
        return None
    return value if isinstance(value, str) else None


def _params(run: Run) -> dict:
    try:
        return params_of(run.config)
    except Exception:
        return {}
