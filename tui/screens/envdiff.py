"""Environment diff: two runs' recorded software and hardware side by side (package
versions, labdeck commit and dirty flag, device, host), differences marked; the same
rows as `labdeck compare A B --env` (backend/envdiff.py)."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Header, Static

from labdeck.backend.envdiff import env_diff
from labdeck.backend.runs import Run

from ..widgets.footer import PriorityFooter
from ..widgets.row_table import RowTable


class EnvDiffScreen(Screen):
    DEFAULT_CSS = """
    EnvDiffScreen #env-head { height: auto; padding: 0 1; }
    EnvDiffScreen #env-table { height: 1fr; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("d", "only_differences", "Only differences"),
    ]

    def __init__(self, a: Run, b: Run) -> None:
        super().__init__()
        self.a, self.b = a, b
        self.only_diff = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="env-head", markup=False)
        yield RowTable(id="env-table", cursor_type="row", zebra_stripes=True)
        yield PriorityFooter()

    def on_mount(self) -> None:
        self.title = f"labdeck · environment {self.a.short_id} vs {self.b.short_id}"
        table = self.query_one("#env-table", DataTable)
        w = max(12, (self.app.size.width - 24) // 2)
        table.add_column("field", key="field", width=14)
        table.add_column(f"A {self.a.short_id}", key="a", width=w)
        table.add_column(f"B {self.b.short_id}", key="b", width=w)
        table.add_column("", key="mark", width=1)
        self._fill()

    def _fill(self) -> None:
        rows = env_diff(self.a, self.b)
        differing = [r.name for r in rows if r.differs]
        self.query_one("#env-head", Static).update(
            f"A {self.a.id}\nB {self.b.id}\n"
            + ("differs: " + ", ".join(differing) if differing else "same recorded environment")
        )
        table = self.query_one("#env-table", DataTable)
        table.clear()
        for r in rows:
            if self.only_diff and not r.differs:
                continue
            style = "bold" if r.differs else ""
            table.add_row(
                Text(r.name, style=style),
                Text(r.a, style=style),
                Text(r.b, style=style),
                Text("≠", style="bold red") if r.differs else "",
            )

    def action_only_differences(self) -> None:
        self.only_diff = not self.only_diff
        self._fill()
