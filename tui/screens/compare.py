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
from textual.screen import Screen
from textual.widgets import DataTable, Header, Input, Select, Static

from labdeck.backend.compare import compare_runs
from labdeck.backend.errors import UserError
from labdeck.backend.paramcols import fmt_param
from labdeck.backend.reports import caption, style_keys, style_slots
from labdeck.backend.runs import Run, is_repro_id

from .. import fmt
from ..data import RunView, pick_default
from ..plotting import SMOOTHING, curve_of, kind_views, matching, smoothing_note, x_modes
from ..polling import BackgroundPoll
from ..widgets.footer import PriorityFooter
from ..widgets.row_table import RowTable
from ..widgets.series_plot import SeriesPlot
from .typing import typing_guard

if TYPE_CHECKING:
    from ..app import LabdeckApp


def _cell(v: Any) -> str:
    if isinstance(v, float | int) and not isinstance(v, bool):
        return fmt.number(v, 6)
    text = "—" if v is None else str(v)
    return text if len(text) <= 40 else text[:39] + "…"


class CompareScreen(Screen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("equals_sign", "focus_tol", "Tolerance", priority=True),
        Binding("v", "focus_metric", "Curve"),
        Binding("x", "x_axis", "X axis"),
        Binding("m", "smooth", "Smooth"),
        Binding("enter", "open_first", "Open run", show=False),
        Binding("e", "env_diff", "Env diff", show=False),
    ]

    def __init__(self, runs: list[Run], tol: float | None = None) -> None:
        super().__init__()
        self.runs = runs
        self.tol = tol
        self.views = [RunView(r) for r in runs]
        self._poll = BackgroundPoll(self, self._read, self._apply, "compare-read")
        self._series: list[str] = []
        self.x_mode = "native"
        self.smoothing = 0.0

    @property
    def lab(self) -> LabdeckApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="compare-head")
        with Horizontal(id="compare-bar"):
            yield Static("tolerance", classes="label")
            yield Input(
                "" if self.tol is None else str(self.tol),
                placeholder="per metric",
                id="tol",
                restrict=r"[0-9eE.+\-]*",
            )
            yield Select([], prompt="curve metric", id="metric")
        with Horizontal(id="compare-tables"):
            yield RowTable(id="compare-metrics", zebra_stripes=True, cursor_type="row")
            yield RowTable(id="compare-params", zebra_stripes=True, cursor_type="row")
        yield Static(classes="problem", id="compare-problem", markup=False)
        yield SeriesPlot(id="compare-plot")
        yield PriorityFooter()

    def on_resize(self) -> None:
        self.set_class(self.size.width < 100, "-narrow")

    def on_mount(self) -> None:
        self.title = "labdeck · compare"
        self.sub_title = " vs ".join(lab.split(" ", 1)[1] for lab in self._labels())
        counted = caption(self.runs)  # how the numbers were counted (em: em_rate)
        self.query_one("#compare-metrics").border_title = (
            f"final metrics · {counted}" if counted else "final metrics"
        )
        self.query_one("#compare-params").border_title = "parameters that differ"
        self.query_one("#compare-plot").border_title = "curves"
        self._fill_tables()
        self.set_focus(self.query_one("#compare-metrics", DataTable))
        self._poll()
        self.set_interval(2.0, self._poll)

    # ------------------------------------------------------------------ tables

    def _labels(self) -> list[str]:
        """A, B, … plus an id that tells the runs apart: a reproduction shares its
        original's 6 digits plus `r`; one named otherwise is marked `·repro`."""
        labels = []
        for i, r in enumerate(self.runs):
            try:
                repro = bool(r.state().get("reproduction_of")) and not is_repro_id(r.id)
            except Exception:
                repro = False
            label = r.short_id + ("·repro" if repro else "")
            if label in [lab.split(" ", 1)[1] for lab in labels]:
                label += f"{i}"
            labels.append(f"{chr(65 + i)} {label}")
        return labels

    def _fill_tables(self) -> None:
        head = Text()
        for i, (label, run) in enumerate(zip(self._labels(), self.runs, strict=True)):
            if i:
                head.append("\n")
            head.append(label, style="bold")  # ids and titles are data, never markup
            if self.app.size.width >= 100:
                head.append(f"  {run.id}")
            head.append(f"  {run.status()}", style="dim")
        self.query_one("#compare-head", Static).update(head)
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
        tol = "per-metric tol" if self.tol is None else f"tol {self.tol:g}"
        table.add_columns("metric", tol, *labels, "max |Δ|")
        names: list[str] = []
        for c in comps:
            names += [m.name for m in c.metrics if m.name not in names]
        theme = self.app.theme_variables
        for name in names:
            rows = [next((m for m in c.metrics if m.name == name), None) for c in comps]
            values = [rows[0].a if rows and rows[0] else None]
            values += [m.b if m else None for m in rows]
            diffs = [m.diff for m in rows if m and m.diff is not None]
            verdicts = {m.verdict if m else "FAIL" for m in rows}
            if "pending" in verdicts:
                word, color = "pending", theme.get("warning")
            elif verdicts == {"info"}:
                ratios = [m.ratio for m in rows if m and m.ratio is not None]
                word = f"×{ratios[-1]:.3g}" if ratios else "info"
                color = theme.get("foreground-muted") or theme.get("foreground")
            elif "FAIL" in verdicts:
                word, color = "FAIL", theme.get("error")
            else:
                word, color = "PASS", theme.get("success")
            tols = {m.tol for m in rows if m and m.role == "outcome"}
            if word == "PASS" or word == "FAIL":
                word += f" ≤{min(tols):g}" if tols and self.tol is None else ""
            verdict = Text(word, style=f"bold {color}" if color else "bold")
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
        for key in keys:  # values as the run's parameters hold them (1e-4, false), as in ls
            table.add_row(key, *(fmt_param(f[key], 40) if key in f else "—" for f in flat))
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
        """The first series of the kind's first declared view, else its primary metric."""
        try:
            kind = self.runs[0].kind
        except Exception:
            kind = ""
        for view in kind_views(kind):
            chosen = matching(names, view.metrics)
            if chosen:
                return chosen[0]
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
        xlabel = ""
        # More than two runs: styled and labelled by the parameters that differ (the same
        # picture as `labdeck plot RUN RUN ...`); two: A/B, run and its reproduction.
        slots = style_slots(self.runs, style_keys(self.runs)) if len(self.runs) > 2 else None
        for i, (label, view) in enumerate(zip(self._labels(), self.views, strict=True)):
            if view.series(str(value)) is not None:
                if slots:
                    label = f"{label.split(' ', 1)[0]} {slots[i][2]}"
                curve, axis = curve_of(view, str(value), label, self.x_mode, self.smoothing)
                if curve is not None:
                    if slots:
                        curve.color_slot, curve.marker_slot = slots[i][0], slots[i][1]
                    curves.append(curve)
                    xlabel = axis
        note = smoothing_note(curves, self.smoothing)
        self.query_one(SeriesPlot).draw(
            curves, " · ".join(x for x in (str(value), note) if x), xlabel
        )

    @on(Select.Changed, "#metric")
    def _metric_changed(self) -> None:
        self._draw()

    @on(Input.Submitted, "#tol")
    def _tol_changed(self, event: Input.Submitted) -> None:
        try:
            tol = float(event.value) if event.value.strip() else None
            if tol is not None and tol < 0:
                raise ValueError
        except ValueError:
            self.notify(f"tolerance {event.value!r}: expected a number ≥ 0", severity="error")
            return
        self.tol = tol
        self._fill_tables()
        self.set_focus(self.query_one("#compare-metrics", DataTable))

    def action_focus_tol(self) -> None:
        self.set_focus(self.query_one("#tol", Input))  # at once: the next keys are the value

    def action_focus_metric(self) -> None:
        self.set_focus(self.query_one("#metric", Select))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return typing_guard(self, action)

    def action_x_axis(self) -> None:
        """Only the x axes the compared series have (a sweep has its levels only)."""
        value = self.query_one("#metric", Select).value
        names = [] if value is Select.NULL else [str(value)]
        modes: list[str] = ["native"]
        for view in self.views:
            modes += [m for m in x_modes(view, names) if m not in modes]
        if len(modes) == 1:
            self.x_mode = "native"
            self.notify("x axis: the series' own axis is the only one", timeout=3)
            return
        at = modes.index(self.x_mode) if self.x_mode in modes else -1
        self.x_mode = modes[(at + 1) % len(modes)]
        self.notify(f"x axis: {self.x_mode} (of {', '.join(modes)})", timeout=2)
        self._draw()

    def action_smooth(self) -> None:
        self.smoothing = SMOOTHING[(SMOOTHING.index(self.smoothing) + 1) % len(SMOOTHING)]
        self.notify(f"smoothing: {self.smoothing:g}", timeout=2)
        self._draw()

    def action_open_first(self) -> None:
        self.lab.open_monitor(self.runs[0])

    def action_env_diff(self) -> None:
        """The first two runs' recorded environments side by side (screens/envdiff.py)."""
        self.lab.open_env_diff(self.runs[:2])
