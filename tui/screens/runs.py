"""Runs: every run directory under the results folder, live, with the actions on them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from rich.style import Style
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.markup import escape
from textual.screen import Screen
from textual.widgets import DataTable, Header, Input, Select, Static

from labdeck.backend.paramcols import fmt_param

from .. import fmt
from ..alerts import StatusWatch
from ..groupfold import GroupRow, fold
from ..polling import BackgroundPoll
from ..runlist import RunList, RunRow
from ..runquery import RunQuery
from ..runs_columns import (  # noqa: F401  (COLUMNS, status_text: re-exported)
    COLUMNS,
    PARAM_PREFIX,
    SCHEDULER_STATUS_WIDTH,
    SORTS,
    STATUS_FILTERS,
    Column,
    counts_text,
    fit_columns,
    param_column,
    scheduler_text,
    status_cell,
    status_text,
)
from ..widgets.footer import PriorityFooter
from ..widgets.gpu_strip import GpuStrip
from ..widgets.row_table import RowTable
from .confirm import ConfirmScreen
from .runs_workspace import WorkspaceActions, param_sort_value
from .typing import typing_guard

if TYPE_CHECKING:
    from ..app import LabdeckApp

# cells of a running run that move every second without a file changing
LIVE_CELLS = ("duration", "eta", "cpu", "rss")


class RunsScreen(WorkspaceActions, Screen):
    """The home screen: a live table of runs, filters, and the run actions."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "Open / fold", priority=False),
        Binding("l", "launch", "Launch"),
        Binding("space", "mark", "Mark"),
        Binding("c", "compare", "Compare"),
        Binding("s", "stop", "Stop"),
        Binding("K", "kill", "Kill"),
        Binding("r", "resume", "Resume"),
        Binding("p", "reproduce", "Reproduce"),
        Binding("d", "delete", "Delete"),
        Binding("t", "tags", "Tags", priority=True),
        Binding("n", "note", "Note", priority=True),
        Binding("o", "sort", "Sort"),
        Binding("O", "sort_reverse", "Reverse sort", show=False),
        Binding("slash", "search", "Search", priority=True),
        Binding("f", "cycle_status", "Status filter"),
        Binding("k", "cycle_kind", "Kind filter", show=False),
        Binding("b", "pin", "Pin baseline"),
        Binding("v", "overlay", "Overlay"),
        Binding("a", "records", "Records"),
        Binding("G", "gpu", "GPU"),
        Binding("e", "env_diff", "Env diff", show=False),
        Binding("C", "columns", "Columns", show=False),
        Binding("escape", "clear_filters", "Clear filters", show=False),
        Binding("enter", "leave_box", "Done", show=False, priority=True),
    ]
    BOX_IDS = ("search",)

    def __init__(self) -> None:
        super().__init__()
        self.marked: list[str] = []
        self._search = ""
        self._query = RunQuery()
        self.pinned: str | None = None  # the baseline run, kept on top
        self._col_spec: str | None = None  # the user's parameter columns (None: auto)
        self._param_cols: list[Column] = []
        self._scheduled = False  # a listed run has a scheduler: room for its job and state
        self._watch = StatusWatch()
        self.watched: str | None = None  # the run last opened from here
        self._status_filter: str | None = None
        self._kind_filter: str | None = None
        self._shown: list[str] = []
        self._columns: list[tuple[Column, int, str]] = []
        self.sort_key = "started"
        self.sort_reverse = True  # newest first
        self._entries: dict[str, RunRow | GroupRow] = {}
        self._expanded: set[str] = set()  # groups unfolded with enter
        self._poller = BackgroundPoll(self, self._scan, self._refresh_model, "runs-scan")

    def _scan(self) -> tuple[set[str], set[str], set[str]]:
        self.model.refresh_scheduler()
        return self.model.refresh()

    @property
    def lab(self) -> LabdeckApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Header()
        yield GpuStrip(probe=self.lab.gpu_probe, interval=self.lab.gpu_interval, id="gpu")
        with Horizontal(id="filters"):
            yield Input(placeholder="search words, status:failed, tag:x, lr>1e-3  (/)", id="search")
            yield Select([(s, s) for s in STATUS_FILTERS], prompt="any status", id="status-filter")
            yield Select([], prompt="any kind", id="kind-filter")
        yield RowTable(id="runs", cursor_type="row", zebra_stripes=True)
        yield Static(id="runs-status")
        yield PriorityFooter()

    def on_mount(self) -> None:
        self.title = "labdeck"
        self.sub_title = str(self.lab.results)
        self.model = RunList(
            self.lab.results, clock=self.lab.clock, process_probe=self.lab.process_probe
        )
        self._layout_columns(self.app.size.width)
        self._refresh_model(self.model.refresh())
        self.set_focus(self.query_one("#runs", DataTable))
        if self.lab.poll_interval > 0:
            self.set_interval(self.lab.poll_interval, self.poll)

    def on_screen_resume(self) -> None:
        """Back from a run's screen: the cursor is on that run, whatever moved meanwhile."""
        if self.watched and self.watched in self._shown:
            table = self.query_one("#runs", DataTable)
            table.move_cursor(row=self._shown.index(self.watched), animate=False)

    def on_resize(self) -> None:
        self.set_class(self.size.width < 100, "-narrow")
        if self._layout_columns(self.size.width):
            self._rebuild(self._shown, force=True)

    def _layout_columns(self, width: int) -> bool:
        """(Re)create the table's columns for this width; True when they changed."""
        status_width = SCHEDULER_STATUS_WIDTH if self._scheduled else None
        columns = fit_columns(width, tuple(self._param_cols), status_width)
        if [(c.key, w, h) for c, w, h in columns] == [(c.key, w, h) for c, w, h in self._columns]:
            return False
        self._columns = columns
        table = self.query_one("#runs", DataTable)
        table.clear(columns=True)
        for col, w, header in columns:
            arrow = ""
            if col.key == self.sort_key:
                arrow = "▼" if self.sort_reverse else "▲"
            table.add_column(f"{header}{arrow}", key=col.key, width=w)
        return True

    # ------------------------------------------------------------------ polling

    def poll(self) -> None:
        """Rescan in a thread (stat calls on a shared filesystem can be slow)."""
        self._poller()

    def _sorted(self) -> list[RunRow]:
        rows = list(self.model.rows.values())
        now = self.lab.clock()

        def key(r: RunRow) -> tuple:
            value: Any
            if self.sort_key == "started":
                value = r.started or 0.0
            elif self.sort_key == "duration":
                value = r.duration(now) or 0.0
            elif self.sort_key == "metric":
                value = r.key_value if r.key_value is not None else float("-inf")
            elif self.sort_key == "progress":
                value = r.fraction
            elif self.sort_key.startswith(PARAM_PREFIX):
                value = param_sort_value(r.params.get(self.sort_key[len(PARAM_PREFIX) :]))
            else:
                value = str(getattr(r, self.sort_key, "") or "")
            return (value, r.id)

        ordered = sorted(rows, key=key, reverse=self.sort_reverse)
        pinned = [r for r in ordered if r.id == self.pinned]
        return pinned + [r for r in ordered if r.id != self.pinned]

    def _refresh_model(self, delta: tuple[set[str], set[str], set[str]]) -> None:
        added, changed, removed = delta
        if added or removed:
            self._update_kind_options()
        if added or changed or removed:
            self._ring(self._watch.update(self.model.rows.values()))
        visible = [r for r in self._sorted() if self._visible(r)]
        self._entries = {_key(e): e for e in fold(visible, self._expanded)}
        wanted = list(self._entries)
        table = self.query_one("#runs", RowTable)
        # columns follow the listed runs: their differing parameters, a scheduler's state
        refit = wanted != self._shown or (
            bool(changed) and any(r.scheduler for r in visible) != self._scheduled
        )
        relaid = refit and self._fit_param_columns(visible)
        if wanted != self._shown or relaid:
            self._rebuild(wanted)
        else:
            for rid in changed:
                row = self.model.rows.get(rid)
                if row is None:
                    continue
                self._update_row(table, row)
                if row.group_id and GroupRow(row.group_id).key in self._entries:
                    self._update_row(table, self._entries[GroupRow(row.group_id).key])
            # Durations and ETAs of live runs move every second without a file changing.
            for rid in self._shown:
                row = self._entries[rid]
                if isinstance(row, RunRow) and row.status == "running":
                    cells = self._cells(row)
                    table.set_row(rid, {k: cells[k] for k in LIVE_CELLS if k in cells})
        self._update_status_line()

    def _visible(self, row: RunRow) -> bool:
        if self._status_filter and row.status != self._status_filter:
            return False
        if self._kind_filter and row.kind != self._kind_filter:
            return False
        return not self._query or self._query.matches(row) or row.id == self.pinned

    def _rebuild(self, wanted: list[str], force: bool = False) -> None:
        table = self.query_one("#runs", DataTable)
        current = self._current_id()
        table.clear()
        keys = [c.key for c, _, _ in self._columns]
        for rid in wanted:
            cells = self._cells(self._entries[rid])
            table.add_row(*(cells.get(k, "") for k in keys), key=rid)
        self._shown = wanted
        if current in wanted:
            table.move_cursor(row=wanted.index(current), animate=False)

    def _update_row(self, table: RowTable, row: RunRow | GroupRow) -> None:
        if _key(row) in self._shown:
            table.set_row(_key(row), self._cells(row))

    def _progress_text(self, fraction: float, after: str) -> str:
        """A bar sized to the progress column with `after` beside it (runs and groups)."""
        return f"{fmt.bar(fraction, max(3, self._width('progress') - 5))} {after}"

    def _width(self, key: str) -> int:
        return next((w for c, w, _ in self._columns if c.key == key), 10)

    def _group_cells(self, group: GroupRow) -> dict[str, Any]:
        theme = self.app.theme_variables
        best = group.best()
        status = status_cell(
            group.status, theme, self._width("status"), counts_text(dict(group.counts))
        )
        params = {}
        for col in self._param_cols:
            name = col.key[len(PARAM_PREFIX) :]
            values = list(
                dict.fromkeys(fmt_param(m.params[name]) for m in group.members if name in m.params)
            )
            params[col.key] = (
                (values[0] if len(values) == 1 else f"×{len(values)}") if values else "—"
            )
        return {
            **params,
            "mark": "▾" if group.expanded else "▸",
            "id": group.id,
            "kind": group.kind,
            "title": Text(f"{group.title[:14]} ×{len(group.members)}"),
            "status": status,
            "progress": self._progress_text(group.fraction, f"{group.fraction * 100:3.0f}%"),
            "eta": "—",
            "started": fmt.stamp(
                min((m.started for m in group.members if m.started), default=None)
            ),
            "duration": "—",
            "metric": f"best {fmt.number(best.key_value)} [dim]{best.run.short_id}[/dim]"
            if best
            else "—",
        }

    def _cells(self, row: RunRow | GroupRow) -> dict[str, Any]:
        if isinstance(row, GroupRow):
            return self._group_cells(row)
        now = self.lab.clock()
        theme = self.app.theme_variables
        pw = self._width("progress")
        progress: Any
        if row.stopped and row.total:
            progress = Text(self._progress_text(row.fraction, f"{row.done}/{row.total}")[:pw])
            progress.append("" if pw < 14 else " early", style="dim")
        else:
            pct = f"{row.fraction * 100:3.0f}%" if (row.total or row.status == "completed") else ""
            progress = self._progress_text(row.fraction, pct)
        mw = self._width("metric")
        metric: Any = "—"
        if row.key_value is not None:
            value = fmt.number(row.key_value)
            room = mw - len(value) - 1
            full = row.key_name or ""
            name = full if len(full) <= room else ""  # a cut name reads as another metric
            metric = f"{value} [dim]{escape(name)}[/dim]" if name else value
        elif row.error:
            metric = Text(row.error[: mw * 2], style=Style(color=theme.get("error")))
        title = row.title
        tw = self._width("title")
        if len(title) > tw:
            title = title[: tw - 1] + "…"
        live = row.status == "running"
        return {
            **{
                c.key: fmt_param(row.params[c.key[len(PARAM_PREFIX) :]], c.width)
                if c.key[len(PARAM_PREFIX) :] in row.params
                else "—"
                for c in self._param_cols
            },
            "mark": "●" if row.id in self.marked else ("◆" if row.id == self.pinned else " "),
            "id": ("  " if row.group_id else "") + row.run.short_id,
            "kind": row.kind,
            "title": Text(title),
            "status": scheduler_text(row, theme, self._width("status")),
            "progress": progress,
            "eta": fmt.duration(row.eta) if live and row.eta is not None else "—",
            "started": fmt.stamp(row.started),
            "duration": fmt.duration(row.duration(now)),
            "metric": metric,
            "cpu": f"{row.cpu:.0f}%" if live and row.cpu is not None else "—",
            "rss": fmt.size(row.rss) if live and row.rss is not None else "—",
            "tags": Text(" ".join(row.tags) + (" ✎" if row.note else "")),
        }

    def _update_status_line(self) -> None:
        rows = list(self.model.rows.values())
        counts: dict[str, int] = {}
        for r in rows:
            counts[r.status] = counts.get(r.status, 0) + 1
        parts = [f"{len(self._shown)} of {fmt.counted(len(rows), 'run')}"]
        parts += [f"{n} {s}" for s, n in sorted(counts.items())]
        if self.marked:
            parts.append(
                f"marked: {', '.join(self.model.rows[m].run.short_id for m in self.marked if m in self.model.rows)}"
            )
        filters = [f for f in (self._status_filter, self._kind_filter) if f]
        if self._query:
            filters.append(self._query.describe())
        if filters:
            parts.append("filter: " + " ".join(filters))
        if self._query.problem:
            parts.append(self._query.problem)
        if self.pinned in self.model.rows:
            parts.append(f"baseline ◆ {self.model.rows[self.pinned].run.short_id}")
        parts.append(f"sort: {self.sort_key} {'↓' if self.sort_reverse else '↑'}")
        current = self._current_id()
        row = self.model.rows.get(current) if current else None
        if row is not None and (row.note or row.tags):
            parts.append(
                f"{row.run.short_id}: {' '.join('#' + t for t in row.tags)} {row.note}".strip()
            )
        if not rows:
            parts = [f"no runs in {self.lab.results}/ yet: press l to launch one"]
        self.query_one("#runs-status", Static).update(escape(" · ".join(parts)))

    def _update_kind_options(self) -> None:
        kinds = sorted({r.kind for r in self.model.rows.values()})
        select = self.query_one("#kind-filter", Select)
        value = select.value
        select.set_options([(k, k) for k in kinds])
        if value in kinds:
            select.value = value

    # ------------------------------------------------------------------ filters and sorting

    @on(Input.Changed, "#search")
    def _search_changed(self, event: Input.Changed) -> None:
        self._search = event.value.strip()
        self._query = RunQuery.parse(self._search)
        self._refresh_model((set(), set(), set()))

    def action_leave_box(self) -> None:
        self.set_focus(self.query_one("#runs", DataTable))

    @on(Input.Submitted, "#search")
    def _search_done(self) -> None:
        self.set_focus(self.query_one("#runs", DataTable))

    @on(Select.Changed, "#status-filter")
    def _status_changed(self, event: Select.Changed) -> None:
        self._status_filter = None if event.value is Select.NULL else str(event.value)
        self._refresh_model((set(), set(), set()))

    @on(Select.Changed, "#kind-filter")
    def _kind_changed(self, event: Select.Changed) -> None:
        self._kind_filter = None if event.value is Select.NULL else str(event.value)
        self._refresh_model((set(), set(), set()))

    @on(DataTable.RowHighlighted, "#runs")
    def _row_highlighted(self) -> None:
        self._update_status_line()

    @on(DataTable.HeaderSelected, "#runs")
    def _header_clicked(self, event: DataTable.HeaderSelected) -> None:
        key = str(event.column_key.value)
        if key in SORTS or key.startswith(PARAM_PREFIX):
            self._set_sort(key, not self.sort_reverse if key == self.sort_key else True)

    def _set_sort(self, key: str, reverse: bool) -> None:
        self.sort_key, self.sort_reverse = key, reverse
        self._columns = []
        self._layout_columns(self.size.width or self.app.size.width)
        self._shown = []
        self._refresh_model((set(), set(), set()))

    def action_sort(self) -> None:
        """Next sort column (started, status, kind, title, duration, metric, progress,
        then each parameter column)."""
        sorts = [*SORTS, *(c.key for c in self._param_cols)]
        at = sorts.index(self.sort_key) if self.sort_key in sorts else -1
        nxt = sorts[(at + 1) % len(sorts)]
        self._set_sort(nxt, nxt in ("started", "duration", "metric", "progress"))

    def action_sort_reverse(self) -> None:
        self._set_sort(self.sort_key, not self.sort_reverse)

    def _set_select(self, selector: str, value: str | None) -> None:
        select = self.query_one(selector, Select)
        if value is None:
            select.clear()
        else:
            select.value = value

    def action_search(self) -> None:
        # set_focus (not .focus(), which waits a frame) so letters typed right after
        # `/` go into the box, not to the screen's keys
        self.set_focus(self.query_one("#search", Input))

    def action_cycle_status(self) -> None:
        options = [None, *STATUS_FILTERS]
        nxt = options[(options.index(self._status_filter) + 1) % len(options)]
        self._set_select("#status-filter", nxt)

    def action_cycle_kind(self) -> None:
        options = [None, *sorted({r.kind for r in self.model.rows.values()})]
        cur = self._kind_filter if self._kind_filter in options else None
        nxt = options[(options.index(cur) + 1) % len(options)]
        self._set_select("#kind-filter", nxt)

    def action_clear_filters(self) -> None:
        self.query_one("#search", Input).value = ""
        self._set_select("#status-filter", None)
        self._set_select("#kind-filter", None)
        self.set_focus(self.query_one("#runs", DataTable))

    # ------------------------------------------------------------------ actions

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return typing_guard(self, action)

    def _current_id(self) -> str | None:
        table = self.query_one("#runs", DataTable)
        if not self._shown or table.cursor_row < 0 or table.cursor_row >= len(self._shown):
            return None
        return self._shown[table.cursor_row]

    def _current(self) -> RunRow | None:
        entry = self._current_entry()
        if isinstance(entry, GroupRow):
            self.notify("a group: press enter to unfold it and pick a run", severity="warning")
            return None
        return entry

    def _current_entry(self) -> RunRow | GroupRow | None:
        rid = self._current_id()
        if rid is None:
            self.notify("no run selected", severity="warning")
            return None
        return self._entries.get(rid)

    @on(DataTable.RowSelected, "#runs")
    def _row_selected(self) -> None:
        self.action_open()

    def action_open(self) -> None:
        entry = self._current_entry()
        if isinstance(entry, GroupRow):
            self._expanded ^= {entry.id}
            self._refresh_model((set(), set(), set()))
        elif entry:
            self.watched = entry.id
            self.lab.open_monitor(entry.run)

    def action_launch(self) -> None:
        self.lab.open_launch()

    def action_mark(self) -> None:
        row = self._current()
        if not row:
            return
        if row.id in self.marked:
            self.marked.remove(row.id)
        else:
            self.marked.append(row.id)
        self.query_one("#runs", RowTable).set_row(row.id, {"mark": self._cells(row)["mark"]})
        self._update_status_line()

    def action_compare(self) -> None:
        entry = self._current_entry() if not self.marked else None
        if isinstance(entry, GroupRow):  # a group: its members side by side
            self.lab.open_compare([m.run for m in entry.members])
            return
        marked = [self.model.rows[m].run for m in self.marked if m in self.model.rows]
        if len(marked) >= 2:
            self.lab.open_compare(marked)
            return
        row = self._current()
        if row:
            self.lab.compare_with_counterpart(row.run)

    def action_stop(self) -> None:
        """Asks first, naming the run (or group): `s` on the wrong row must not stop a run."""
        entry = self._current_entry()
        if not entry:
            return
        if isinstance(entry, GroupRow):
            live = sum(1 for m in entry.members if m.status in ("running", "queued"))
            question = f"Stop group {entry.id} ({entry.title}): its {live} running or queued runs?"
        else:
            question = (
                f"Stop {entry.run.short_id} · {entry.title} ({entry.status})?\n{entry.id}\n"
                "It finishes the unit in hand and stops; resume continues from there."
            )

        def done(confirmed: bool | None) -> None:
            if confirmed:
                self.lab.run_verb("stop", _target(entry))

        self.app.push_screen(ConfirmScreen(question), done)

    def action_kill(self) -> None:
        row = self._current()
        if row:
            self.lab.confirm_kill(row.run)

    def action_resume(self) -> None:
        entry = self._current_entry()
        if entry:
            self.lab.run_verb("resume", _target(entry))

    def action_reproduce(self) -> None:
        entry = self._current_entry()
        if entry:
            self.lab.run_verb("reproduce", _target(entry))

    def action_tags(self) -> None:
        row = self._current()
        if row:
            self.lab.edit_tags(row.run)

    def action_note(self) -> None:
        row = self._current()
        if row:
            self.lab.edit_note(row.run)

    def action_delete(self) -> None:
        row = self._current()
        if not row:
            return

        def done(confirmed: bool | None) -> None:
            if confirmed:
                self.lab.run_verb("delete", row.run)
                if row.id in self.marked:
                    self.marked.remove(row.id)

        self.app.push_screen(
            ConfirmScreen(
                f"Delete {row.id}?\nIts whole directory is removed; this cannot be undone."
            ),
            done,
        )


def _key(entry: RunRow | GroupRow) -> str:
    return entry.key if isinstance(entry, GroupRow) else entry.id


def _target(entry: RunRow | GroupRow) -> Any:
    """What a verb acts on: the run, or the group (the CLI takes a group id as RUN)."""
    return entry if isinstance(entry, GroupRow) else entry.run
