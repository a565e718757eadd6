"""A DataTable whose row updates repaint that row only.

`DataTable.update_cell` bumps one counter that every render cache is keyed by, so one
changed cell makes the next frame re-render every visible cell of the table: with the
Runs screen's ten columns that is ~60 ms per poll on 1,000 runs, for one run whose
metric moved. `set_row` writes the cells of one row, skips values that did not change,
and evicts only that row's cached renders, so the frame re-renders one row.

Home and End go to the first and last row: in a table of runs or records, a row is
what a user moves between (DataTable's own Home and End move between columns).

It reaches into DataTable's caches (Textual 8). Should a later Textual rename them,
`set_row` falls back to `update_cell`, which is slower but equally correct; the tests
read the rendered row either way.
"""

from __future__ import annotations

from typing import Any, ClassVar

from textual.binding import Binding, BindingType
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey, RowKey


class RowTable(DataTable):
    """DataTable with `set_row`, an update that costs one row's rendering."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("home", "scroll_top", "First row", show=False),
        Binding("end", "scroll_bottom", "Last row", show=False),
    ]

    def set_row(self, row_key: str, values: dict[str, Any]) -> None:
        """Give the row `row_key` these cells (by column key; unknown columns ignored)."""
        key = RowKey(row_key)
        row = self._data.get(key)
        if row is None:
            return
        changed = False
        for name, value in values.items():
            column = ColumnKey(name)
            if column in row and row[column] != value:
                row[column] = value
                changed = True
        if not changed:
            return
        try:
            self._evict_row(key)
        except AttributeError:  # DataTable's internals moved: the whole-table path
            self._update_count += 1
            self.refresh()

    def _evict_row(self, key: RowKey) -> None:
        index = self._row_locations.get(key)
        for cache, field, wanted in (
            (self._cell_render_cache, 0, key),
            (self._row_render_cache, 0, key),
            (self._row_renderable_cache, 1, index),
        ):
            for cached in [k for k in cache.keys() if k[field] == wanted]:  # noqa: SIM118 (an LRUCache)
                cache.discard(cached)
        self._line_cache.clear()  # keyed by screen line; rebuilt from the row caches
        self.refresh_row(index)
