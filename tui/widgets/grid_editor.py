"""The Launch form's grid editor: axis values per parameter, and how many runs they make.

One axis per `;`-separated item, `key=a,b,...` in the command line's `--grid` syntax,
e.g. `seed=1,2,3; learning_rate=0.001,0.003` → 6 runs. Parsing reuses the backend's
`--grid` parser, so the form and the command line accept exactly the same text; the
full check (known parameter, right type) and the estimate come from the dry run.
"""

from __future__ import annotations

import math

from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Input, Static

from labdeck.backend.errors import UserError
from labdeck.backend.grid import parse_grid_flag


def parse_axes(text: str) -> tuple[list[str], int, str | None]:
    """(the `--grid` arguments, the number of runs, an error or None)."""
    items = [x.strip() for x in text.split(";") if x.strip()]
    if not items:
        return [], 1, None
    sizes = []
    for item in items:
        try:
            sizes.append(len(parse_grid_flag(item).values))
        except UserError as exc:
            return [], 0, str(exc)
    keys = [i.partition("=")[0].strip() for i in items]
    if len(set(keys)) != len(keys):
        return [], 0, "the same parameter appears in two axes"
    return items, math.prod(sizes), None


class GridEditor(Vertical):
    """An Input for the axes and a line with the expanded count (and the estimate)."""

    class Changed(Message):
        def __init__(self, editor: GridEditor) -> None:
            super().__init__()
            self.editor = editor

    def compose(self) -> ComposeResult:
        yield Input(placeholder="grid: key=a,b; other=x,y", id="grid-axes")
        yield Static("[dim]single run (axes make one run per combination)[/dim]", id="grid-count")

    @property
    def axes(self) -> list[str]:
        return parse_axes(self.query_one("#grid-axes", Input).value)[0]

    @property
    def error(self) -> str | None:
        return parse_axes(self.query_one("#grid-axes", Input).value)[2]

    @on(Input.Changed, "#grid-axes")
    def _changed(self) -> None:
        items, count, error = parse_axes(self.query_one("#grid-axes", Input).value)
        line = self.query_one("#grid-count", Static)
        if error:
            line.update(f"[$error]{error}[/]")
        elif items:
            line.update(
                f"[b]{count}[/b] runs, one per combination ({len(items)} axes) — ctrl+t estimates them"
            )
        else:
            line.update("[dim]single run (axes make one run per combination)[/dim]")
        self.post_message(self.Changed(self))

    def show_estimate(self, runs: int, units: int, seconds: float, memory: str) -> None:
        from .. import fmt

        self.query_one("#grid-count", Static).update(
            f"[b]{runs}[/b] runs · {units} units · largest {memory} · ~{fmt.duration(seconds)} in all"
        )
