"""Checkpoint / per-level / per-epoch metrics as a table (rows: where; columns: metric)."""

from __future__ import annotations

from textual.widgets import DataTable

from .. import fmt
from ..data import RunView, field_of


class MetricsTable(DataTable):
    def __init__(self, **kw) -> None:
        super().__init__(zebra_stripes=True, cursor_type="row", **kw)
        self._version = -1

    def sync(self, view: RunView) -> None:
        if view.table_version == self._version:
            return
        self._version = view.table_version
        rows = view.table_rows()
        grouped = any(group for (_, _, group), _ in rows)
        self.clear(columns=True)
        if not rows:  # step-wise kinds (em) put their numbers in the plots and tables below
            self.add_column("per-epoch / per-level metrics", key="at")
            self.add_row("none in this run (see Plots, and the tables below)")
            return
        self.add_column("at", key="at")
        if grouped:
            self.add_column("group", key="group")
        for name in view.table_columns:
            self.add_column(name, key=name)
        for (axis, x, group), values in rows:
            cells = [f"{axis} {x}"]
            if grouped:
                cells.append(group)
            cells += [fmt.number(values.get(name)) for name in view.table_columns]
            self.add_row(*cells)
        if rows:
            self.move_cursor(row=len(rows) - 1, animate=False)


class ViewTable(DataTable):
    """One Table view a kind declares: a row per event of its type, its named columns."""

    def __init__(self, spec, **kw) -> None:
        super().__init__(zebra_stripes=True, cursor_type="row", **kw)
        self.spec = spec
        self._version = -1

    def on_mount(self) -> None:
        self.border_title = self.spec.title
        shorts = [c.rsplit(".", 1)[-1] for c in self.spec.columns]
        distinct = len(set(shorts)) == len(shorts)
        for name, short in zip(self.spec.columns, shorts, strict=True):
            self.add_column(short if distinct else name, key=name)

    def sync(self, view: RunView) -> None:
        if view.kept_version == self._version:
            return
        self._version = view.kept_version
        self.clear()
        for ev in view.kept.get(self.spec.event, ()):
            self.add_row(*(_cell(field_of(ev, c)) for c in self.spec.columns))
        if self.row_count:
            self.move_cursor(row=self.row_count - 1, animate=False)


def _cell(value) -> str:
    if isinstance(value, bool) or value is None:
        return "—" if value is None else str(value).lower()
    if isinstance(value, int | float):
        return fmt.number(value)
    return str(value)
