"""Checkpoint / per-level / per-epoch metrics as a table (rows: where; columns: metric)."""

from __future__ import annotations

from textual.widgets import DataTable

from .. import fmt
from ..data import RunView


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
