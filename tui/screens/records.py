"""Records: what a run produced, searchable, each record in full in a side pane;
the files under artifacts/ listed with the images named.

Answers per level (degradation), judged answers with their scores (em), processed
conversations and pairwise verdicts (feedback), the smoke kind's answers: any kind's
records.jsonl, summarised the same way (tui/records.py).
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Header, Input, Static

from labdeck.backend.runs import Run

from .. import fmt
from ..polling import BackgroundPoll
from ..records import Artefact, RecordRow, full_text, list_artefacts, read_records
from ..widgets.footer import PriorityFooter
from ..widgets.row_table import RowTable
from .typing import typing_guard


class RecordsScreen(Screen):
    DEFAULT_CSS = """
    RecordsScreen #records-search { height: 1; border: none; padding: 0 1; }
    RecordsScreen #records-body { height: 1fr; }
    RecordsScreen #records-table { width: 3fr; }
    RecordsScreen #record-pane { width: 2fr; border-left: solid $primary; padding: 0 1; }
    RecordsScreen #artefacts { height: auto; max-height: 5; padding: 0 1; }
    RecordsScreen.-narrow #record-pane { display: none; }
    RecordsScreen.-narrow.-pane #record-pane { display: block; width: 1fr; }
    RecordsScreen.-narrow.-pane #records-table { display: none; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "search", "Search", priority=True),
        Binding("f", "toggle_pane", "Full text"),
        Binding("enter", "leave_box", "Done", show=False, priority=True),
    ]
    BOX_IDS = ("records-search",)

    def __init__(self, run: Run) -> None:
        super().__init__()
        self.run = run
        self.rows: list[RecordRow] = []
        self.shown: list[RecordRow] = []
        self.artefacts: list[Artefact] = []
        self.bad_lines = 0
        self._search = ""
        self._loaded = False
        self._poller = BackgroundPoll(self, self._read, self._apply, "records-read")

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(placeholder="search the records' text  (/)", id="records-search")
        with Horizontal(id="records-body"):
            yield RowTable(id="records-table", cursor_type="row", zebra_stripes=True)
            with VerticalScroll(id="record-pane"):
                yield Static(id="record-full", markup=False)
        yield Static(id="artefacts")
        yield PriorityFooter()

    def on_mount(self) -> None:
        self.title = f"labdeck · records of {self.run.short_id}"
        self.set_class(self.app.size.width < 100, "-narrow")
        table = self.query_one("#records-table", DataTable)
        width = self.app.size.width
        narrow = width < 100
        fixed = (("n", "#", 4), ("unit", "unit", 10), ("where", "where", 16))
        room = (width if narrow else width * 3 // 5) - sum(w + 2 for *_, w in fixed) - 4
        # one column for scores and text: a judged record has scores and little text, an
        # answer the opposite, so neither is squeezed by an empty neighbour
        for key, label, w in (*fixed, ("text", "scores · text", max(16, room))):
            table.add_column(label, key=key, width=w)
        self.set_focus(table)
        self._poller()

    def _read(self) -> tuple[list[RecordRow], int, list[Artefact]]:
        rows, bad = read_records(self.run)
        return rows, bad, list_artefacts(self.run)

    def _apply(self, result: tuple[list[RecordRow], int, list[Artefact]]) -> None:
        self.rows, self.bad_lines, self.artefacts = result
        self._loaded = True
        self._fill()
        self._show_artefacts()

    def _fill(self) -> None:
        words = self._search.lower().split()
        self.shown = [r for r in self.rows if all(w in r.search_text() for w in words)]
        table = self.query_one("#records-table", DataTable)
        table.clear()
        width = table.columns[next(k for k in table.columns if k.value == "text")].width
        for r in self.shown:
            cell = Text(no_wrap=True, overflow="ellipsis")
            if r.scores:
                cell.append(r.scores, style="bold")
                cell.append(" · " if r.text else "")
            cell.append(r.text[: width * 3])
            table.add_row(str(r.index + 1), r.unit, r.where, cell, key=str(r.index))
        self._show_current()

    def _show_artefacts(self) -> None:
        text = Text()
        n = len(self.shown)
        text.append(f"{n} of {len(self.rows)} records", style="bold")
        if self.bad_lines:
            text.append(f" · {self.run.records_path}: {self.bad_lines} corrupt line(s) skipped")
        if not self.rows and self._loaded:
            text.append(f" · none yet in {self.run.records_path}")
        images = [a for a in self.artefacts if a.is_image]
        text.append(f"\nartifacts/ ({len(self.artefacts)} files")
        text.append(f", {len(images)} images)" if images else ")")
        text.append(": " if self.artefacts else ": empty")
        for a in self.artefacts[:40]:
            text.append(f"{'▣ ' if a.is_image else ''}{a.path}", style="bold" if a.is_image else "")
            text.append(f" {fmt.size(a.size)}  ", style="dim")
        self.query_one("#artefacts", Static).update(text)

    def _show_current(self) -> None:
        table = self.query_one("#records-table", DataTable)
        pane = self.query_one("#record-full", Static)
        if not self.shown or not 0 <= table.cursor_row < len(self.shown):
            pane.update("no record matches" if self._loaded else "reading…")
            return
        pane.update(full_text(self.shown[table.cursor_row].record))

    @on(DataTable.RowHighlighted, "#records-table")
    def _highlighted(self) -> None:
        self._show_current()

    @on(DataTable.RowSelected, "#records-table")
    def _selected(self) -> None:
        self.action_toggle_pane()

    @on(Input.Changed, "#records-search")
    def _search_changed(self, event: Input.Changed) -> None:
        self._search = event.value.strip()
        self._fill()
        self._show_artefacts()

    @on(Input.Submitted, "#records-search")
    def _search_done(self) -> None:
        self.action_leave_box()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return typing_guard(self, action)

    def action_search(self) -> None:
        self.set_focus(self.query_one("#records-search", Input))

    def action_leave_box(self) -> None:
        self.set_focus(self.query_one("#records-table", DataTable))

    def action_toggle_pane(self) -> None:
        """On a narrow terminal the full text replaces the table (and back)."""
        self.toggle_class("-pane")
        self._show_current()
