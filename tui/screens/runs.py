"""Runs: every run directory under the results folder, live, with the actions on them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from rich.style import Style
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Select, Static

from .. import fmt
from ..groupfold import GroupRow, fold
from ..polling import BackgroundPoll
from ..runlist import RunList, RunRow
from ..widgets.gpu_strip import GpuStrip
from .confirm import ConfirmScreen

if TYPE_CHECKING:
    from ..app import LabdeckApp

COLUMNS = (
    ("mark", " "),
    ("id", "id"),
    ("kind", "kind"),
    ("title", "title"),
    ("status", "status"),
    ("progress", "progress"),
    ("eta", "ETA"),
    ("started", "started"),
    ("duration", "duration"),
    ("metric", "key metric"),
)
STATUS_FILTERS = ("running", "completed", "interrupted", "failed", "crashed", "queued")


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


def scheduler_text(row: RunRow, theme: dict[str, str]) -> Text:
    """Status plus, for a Slurm run, its job id and the scheduler's state."""
    text = status_text(row.status, theme)
    if row.scheduler:
        text.append(f" slurm {row.scheduler}", style=Style(dim=True))
    return text


class RunsScreen(Screen):
    """The home screen: a live table of runs, filters, and the run actions."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "Open / fold", priority=False),
        Binding("l", "launch", "Launch"),
        Binding("space", "mark", "Mark"),
        Binding("c", "compare", "Compare"),
        Binding("s", "stop", "Stop"),
        Binding("r", "resume", "Resume"),
        Binding("p", "reproduce", "Reproduce"),
        Binding("d", "delete", "Delete"),
        Binding("slash", "search", "Search"),
        Binding("f", "cycle_status", "Status filter"),
        Binding("k", "cycle_kind", "Kind filter", show=False),
        Binding("escape", "clear_filters", "Clear filters", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.marked: list[str] = []
        self._search = ""
        self._status_filter: str | None = None
        self._kind_filter: str | None = None
        self._shown: list[str] = []
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
            yield Input(placeholder="search id, kind, title  (/)", id="search")
            yield Select([(s, s) for s in STATUS_FILTERS], prompt="any status", id="status-filter")
            yield Select([], prompt="any kind", id="kind-filter")
        yield DataTable(id="runs", cursor_type="row", zebra_stripes=True)
        yield Static(id="runs-status")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "labdeck"
        self.sub_title = str(self.lab.results)
        self.model = RunList(self.lab.results, clock=self.lab.clock)
        table = self.query_one("#runs", DataTable)
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        self._refresh_model(self.model.refresh())
        table.focus()
        if self.lab.poll_interval > 0:
            self.set_interval(self.lab.poll_interval, self.poll)

    # ------------------------------------------------------------------ polling

    def poll(self) -> None:
        """Rescan in a thread (stat calls on a shared filesystem can be slow)."""
        self._poller()

    def _refresh_model(self, delta: tuple[set[str], set[str], set[str]]) -> None:
        added, changed, removed = delta
        if added or removed:
            self._update_kind_options()
        visible = [r for r in self.model.ordered() if self._visible(r)]
        self._entries = {_key(e): e for e in fold(visible, self._expanded)}
        wanted = list(self._entries)
        table = self.query_one("#runs", DataTable)
        if wanted != self._shown:
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
                    table.update_cell(rid, "duration", self._cells(row)["duration"])
                    table.update_cell(rid, "eta", self._cells(row)["eta"])
        self._update_status_line()

    def _visible(self, row: RunRow) -> bool:
        if self._status_filter and row.status != self._status_filter:
            return False
        if self._kind_filter and row.kind != self._kind_filter:
            return False
        return not self._search or all(w in row.search_text() for w in self._search.split())

    def _rebuild(self, wanted: list[str]) -> None:
        table = self.query_one("#runs", DataTable)
        current = self._current_id()
        table.clear()
        for rid in wanted:
            cells = self._cells(self._entries[rid])
            table.add_row(*(cells[k] for k, _ in COLUMNS), key=rid)
        self._shown = wanted
        if current in wanted:
            table.move_cursor(row=wanted.index(current), animate=False)

    def _update_row(self, table: DataTable, row: RunRow | GroupRow) -> None:
        if _key(row) not in self._shown:
            return
        for key, value in self._cells(row).items():
            table.update_cell(_key(row), key, value)

    def _group_cells(self, group: GroupRow) -> dict[str, Any]:
        theme = self.app.theme_variables
        best = group.best()
        status = status_text(group.status, theme)
        status.append(f" {group.summary()}", style=Style(dim=True))
        return {
            "mark": "▾" if group.expanded else "▸",
            "id": group.id,
            "kind": group.kind,
            "title": Text(f"{group.title[:14]} ×{len(group.members)}"),
            "status": status,
            "progress": f"{fmt.bar(group.fraction, 10)} {group.fraction * 100:3.0f}%",
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
        if row.total:
            progress = f"{fmt.bar(row.fraction, 10)} {row.fraction * 100:3.0f}%"
        else:
            progress = fmt.bar(row.fraction, 10) + (
                "    " if row.status != "completed" else " 100%"
            )
        metric = "—"
        if row.key_value is not None:
            metric = f"{fmt.number(row.key_value)} [dim]{(row.key_name or '')[:12]}[/dim]"
        elif row.error:
            metric = Text(row.error[:60], style=Style(color=theme.get("error")))
        repro = " ⟲" if row.reproduction_of else ""
        return {
            "mark": "●" if row.id in self.marked else " ",
            "id": ("  " if row.group_id else "") + row.run.short_id + repro,
            "kind": row.kind,
            "title": Text(row.title[:22]),
            "status": scheduler_text(row, theme),
            "progress": progress,
            "eta": fmt.duration(row.eta) if row.eta is not None else "—",
            "started": fmt.stamp(row.started),
            "duration": fmt.duration(row.duration(now)),
            "metric": metric,
        }

    def _update_status_line(self) -> None:
        rows = list(self.model.rows.values())
        counts: dict[str, int] = {}
        for r in rows:
            counts[r.status] = counts.get(r.status, 0) + 1
        parts = [f"{len(self._shown)} of {len(rows)} runs"]
        parts += [f"{n} {s}" for s, n in sorted(counts.items())]
        if self.marked:
            parts.append(
                f"marked: {', '.join(self.model.rows[m].run.short_id for m in self.marked if m in self.model.rows)}"
            )
        filters = [f for f in (self._status_filter, self._kind_filter) if f]
        if self._search:
            filters.append(f"“{self._search}”")
        if filters:
            parts.append("filter: " + " ".join(filters))
        if not rows:
            parts = [f"no runs in {self.lab.results}/ yet: press l to launch one"]
        self.query_one("#runs-status", Static).update(" · ".join(parts))

    def _update_kind_options(self) -> None:
        kinds = sorted({r.kind for r in self.model.rows.values()})
        select = self.query_one("#kind-filter", Select)
        value = select.value
        select.set_options([(k, k) for k in kinds])
        if value in kinds:
            select.value = value

    # ------------------------------------------------------------------ filters

    @on(Input.Changed, "#search")
    def _search_changed(self, event: Input.Changed) -> None:
        self._search = event.value.strip().lower()
        self._refresh_model((set(), set(), set()))

    @on(Input.Submitted, "#search")
    def _search_done(self) -> None:
        self.query_one("#runs", DataTable).focus()

    @on(Select.Changed, "#status-filter")
    def _status_changed(self, event: Select.Changed) -> None:
        self._status_filter = None if event.value is Select.NULL else str(event.value)
        self._refresh_model((set(), set(), set()))

    @on(Select.Changed, "#kind-filter")
    def _kind_changed(self, event: Select.Changed) -> None:
        self._kind_filter = None if event.value is Select.NULL else str(event.value)
        self._refresh_model((set(), set(), set()))

    def _set_select(self, selector: str, value: str | None) -> None:
        select = self.query_one(selector, Select)
        if value is None:
            select.clear()
        else:
            select.value = value

    def action_search(self) -> None:
        self.query_one("#search", Input).focus()

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
        self.query_one("#runs", DataTable).focus()

    # ------------------------------------------------------------------ actions

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
        self.query_one("#runs", DataTable).update_cell(row.id, "mark", self._cells(row)["mark"])
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
        entry = self._current_entry()
        if entry:
            self.lab.run_verb("stop", _target(entry))

    def action_resume(self) -> None:
        entry = self._current_entry()
        if entry:
            self.lab.run_verb("resume", _target(entry))

    def action_reproduce(self) -> None:
        entry = self._current_entry()
        if entry:
            self.lab.run_verb("reproduce", _target(entry))

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
