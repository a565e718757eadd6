"""Every key of every screen, generated from the screens' own BINDINGS (never a second list)."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


def _key_label(key: str) -> str:
    """What the key cap says (`=`, `?`, `[`), never Textual's key name (`equals_sign`)."""
    from textual.keys import format_key

    return " / ".join(format_key(k.strip()) for k in key.split(","))


def binding_table(title: str, bindings: list) -> Table:
    table = Table(title=title, title_justify="left", expand=True, show_header=False, box=None)
    # the action column takes the spare width, so every section's keys line up
    table.add_column("key", style="bold", width=16, no_wrap=True)
    table.add_column("action", ratio=1)
    for b in bindings:
        if isinstance(b, Binding):
            table.add_row(_key_label(b.key), b.description or b.action)
        else:
            key, action, *desc = b
            table.add_row(_key_label(key), desc[0] if desc else action)
    return table


def sections() -> list[tuple[str, list]]:
    from ..app import LabdeckApp
    from ..widgets.row_table import RowTable
    from .compare import CompareScreen
    from .envdiff import EnvDiffScreen
    from .gpu import GpuScreen
    from .launch import LaunchScreen
    from .monitor import MonitorScreen
    from .overlay import OverlayScreen
    from .records import RecordsScreen
    from .runs import RunsScreen

    return [
        ("Everywhere", [*LabdeckApp.BINDINGS, Binding("ctrl+p", "palette", "Command palette")]),
        ("Runs", RunsScreen.BINDINGS),
        ("Any table of rows", RowTable.BINDINGS),
        ("Launch", LaunchScreen.BINDINGS),
        ("Monitor", MonitorScreen.BINDINGS),
        ("Compare", CompareScreen.BINDINGS),
        ("Overlay (v)", OverlayScreen.BINDINGS),
        ("Records (a)", RecordsScreen.BINDINGS),
        ("GPU (G)", GpuScreen.BINDINGS),
        ("Environment diff (e)", EnvDiffScreen.BINDINGS),
    ]


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,question_mark", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            for title, bindings in sections():
                yield Static(binding_table(title, bindings))
            yield Static(
                "\n[dim]Runs keep running when the dashboard quits. Themes: ctrl+p → Theme.[/dim]"
            )

    def on_mount(self) -> None:
        self.query_one("#help-box").border_title = "keys"

    def action_dismiss(self) -> None:  # type: ignore[override]
        self.dismiss(None)
