"""Compare: two or more runs — parameter diff, final metrics with PASS/FAIL, overlaid curves.

PASS/FAIL and the parameter diff come from `labdeck.backend.compare` (what `labdeck
compare` prints), each run against the first; the curves come from the same
`RunView` the Monitor screen uses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.markup import escape
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Select, Static

from labdeck.backend.compare import compare_runs
from labdeck.backend.errors import UserError
from labdeck.backend.runs import Run

from .. import fmt
from ..data import RunView, pick_default
from ..polling import BackgroundPoll
from ..widgets.series_plot import Curve, SeriesPlot

if TYPE_CHECKING:
    from ..app import LabdeckApp

DEFAULT_TOL = 1e-6


def _cell(v: Any) -> str:
    if isinstance(v, float | int) and not isinstance(v, bool):
        return fmt.number(v, 6)
    text = "—" if v is None else str(v)
    return text if len(text) <= 40 else text[:39] + "…"


class CompareScreen(Screen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("t", "focus_tol", "Tolerance"),
        Binding("m", "focus_metric", "Curve metric"),
        Binding("o", "open_first", "Open first run", show=False),
    ]

    def __init__(self, runs: list[Run], tol: float = DEFAULT_TOL) -> None:
        super().__init__()
        self.runs = runs
        self.tol = tol
        self.views = [RunView(r) for r in runs]
        self._poll = BackgroundPoll(self, self._read, self._apply, "compare-read")
        self._series: list[str] = []

    @property
    def lab(self) -> LabdeckApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="compare-head")
        with Horizontal(id="compare-bar"):
            yield Static("tolerance", classes="label")
            yield Input(str(self.tol), id="tol", restrict=r"[0-9eE.+\-]*")
            yield Select([], prompt="curve metric", id="metric")
        with Horizontal(id="compare-tables"):
            yield DataTable(id="compare-metrics", zebra_stripes=True, cursor_type="row")
            yield DataTable(id="compare-params", zebra_stripes=True, cursor_type="row")
        yield Static(classes="problem", id="compare-problem", markup=False)
        yield SeriesPlot(id="compare-plot")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "labdeck · compare"
        self.sub_title = " vs ".join(r.short_id for r in self.runs)
        self.query_one("#compare-metrics").border_title = "final metrics"
        self.query_one("#compare-params").border_title = "parameters that differ"
        self.query_one("#compare-plot").border_title = "curves"
        self._fill_tables()
        self.query_one("#compare-metrics", DataTable).focus()
        self._poll()
        self.set_interval(2.0, self._poll)

    # ------------------------------------------------------------------ tables

    def _labels(self) -> list[str]:
        return [f"{chr(65 + i)} {r.short_id}" for i, r in enumerate(self.runs)]

    def _fill_tables(self) -> None:
        head = []
        for label, run in zip(self._labels(), self.runs, strict=True):
            status = run.status()
            head.append(f"[b]{escape(label)}[/b] {escape(run.id)} [dim]{status}[/dim]")
        self.query_one("#compare-head", Static).update("\n".join(head))
        problem = None
        try:
            comps = [compare_runs(self.runs[0], other, self.tol) for other in self.runs[1:]]
        except UserError as exc:
            comps, problem = [], str(exc)
        self._fill_metrics(comps)
        self._fill_params(comps)
        widget = self.query_one("#compare-problem", Static)
        widget.update(problem or "")
        widget.set_class(bool(problem), "-show")

    def _fill_metrics(self, comps: list) -> None:
        table = self.query_one("#compare-metrics", DataTable)
        table.clear(columns=True)
        labels = self._labels()
        table.add_columns("metric", f"tol {self.tol:g}", *labels, "max |Δ|")
        names: list[str] = []
        for c in comps:
            names += [m.name for m in c.metrics if m.name not in names]
        theme = self.app.theme_variables
        for name in names:
            rows = [next((m for m in c.metrics if m.name == name), None) for c in comps]
            values = [rows[0].a if rows and rows[0] else None]
            values += [m.b if m else None for m in rows]
            diffs = [m.diff for m in rows if m and m.diff is not None]
            passed = all(m is not None and m.passed for m in rows)
            verdict = Text(
                "PASS" if passed else "FAIL",
                style=f"bold {theme.get('success') if passed else theme.get('error')}",
            )
            table.add_row(
                name, verdict, *(_cell(v) for v in values), _cell(max(diffs)) if diffs else "—"
            )
        if not names:
            table.add_row("no final metrics yet", *([""] * (len(labels) + 2)))

    def _fill_params(self, comps: list) -> None:
        table = self.query_one("#compare-params", DataTable)
        table.clear(columns=True)
        table.add_columns("parameter", *self._labels())
        keys: list[str] = []
        for c in comps:
            keys += [p.key for p in c.params if p.key not in keys]
        from labdeck.backend.presets import flatten

        flat = []
        for run in self.runs:
            try:
                flat.append(flatten(run.config.get("params", {})))
            except UserError:
                flat.append({})
        for key in keys:
            table.add_row(key, *(_cell(f.get(key)) for f in flat))
        if not keys:
            table.add_row("identical parameters", *([""] * len(self.runs)))

    # ------------------------------------------------------------------ curves

    def _read(self) -> list:
        batches = []
        for v in self.views:
            try:
                batch = v.read()
                batches.append((batch, v.read_older() if v.needs_skim else None))
            except Exception:
                batches.append((None, None))
        return batches

    def _apply(self, batches: list) -> None:
        changed = False
        for view, (batch, older) in zip(self.views, batches, strict=True):
            if batch is not None and view.apply(batch) & {"metrics", "trajectory", "state"}:
                changed = True
            if older is not None:
                view.merge_older(older)
                changed = True
        names: list[str] = []
        for v in self.views:
            names += [n for n in v.series_names() if n not in names]
        if names != self._series:
            self._series = names
            select = self.query_one("#metric", Select)
            current = select.value
            select.set_options([(Text(n), n) for n in names])
            if current in names:
                select.value = current
            elif names:
                select.value = self._default_series(names)
        if changed:
            self._draw()
            if any(v.status != "running" for v in self.views):
                self._fill_tables()

    def _default_series(self, names: list[str]) -> str:
        primary = None
        try:
            primary = self.runs[0].config.get("primary_metric")
        except UserError:
            pass
        return pick_default(names, primary)

    def _draw(self) -> None:
        value = self.query_one("#metric", Select).value
        if value is Select.NULL:
            self.query_one(SeriesPlot).draw([], "no series")
            return
        curves = []
        for label, view in zip(self._labels(), self.views, strict=True):
            s = view.series(str(value))
            if s is not None:
                xs, ys = s.points()
                title = view.run.title if len(self.runs) > 2 else ""
                curves.append(Curve(f"{label} {title}".strip(), xs, ys))
        self.query_one(SeriesPlot).draw(curves, str(value))

    @on(Select.Changed, "#metric")
    def _metric_changed(self) -> None:
        self._draw()

    @on(Input.Submitted, "#tol")
    def _tol_changed(self, event: Input.Submitted) -> None:
        try:
            tol = float(event.value)
            if tol < 0:
                raise ValueError
        except ValueError:
            self.notify(f"tolerance {event.value!r}: expected a number ≥ 0", severity="error")
            return
        self.tol = tol
        self._fill_tables()
        self.query_one("#compare-metrics", DataTable).focus()

    def action_focus_tol(self) -> None:
        self.query_one("#tol", Input).focus()

    def action_focus_metric(self) -> None:
        self.query_one("#metric", Select).focus()

    def action_open_first(self) -> None:
        self.lab.open_monitor(self.runs[0])
