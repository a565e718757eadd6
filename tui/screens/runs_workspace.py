"""The Runs screen's workspace keys: pin a baseline, pick parameter columns, and open
the many-runs views (overlay, records, GPU, environment diff) on the selection.

A mixin of RunsScreen, apart so the screen's own file stays about the table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.widgets import DataTable

from labdeck.backend.errors import UserError
from labdeck.backend.paramcols import choose_columns, differing_params, fmt_param

from ..groupfold import GroupRow
from ..runlist import RunRow
from ..runs_columns import param_column

if TYPE_CHECKING:
    from .runs import RunsScreen

    _Base = RunsScreen
else:
    _Base = object


class WorkspaceActions(_Base):
    def _fit_param_columns(self, visible: list[RunRow]) -> bool:
        """Columns for the parameters that differ among the listed runs (or the user's
        choice); True when the table's columns changed."""
        known = {n for r in visible for n in r.params}
        try:
            names = choose_columns(
                differing_params([r.params for r in visible]), self._col_spec, known
            )
        except UserError:
            names = [n for n in (self._col_spec or "").split(",") if n in known]
        cols = [param_column(n, [fmt_param(r.params.get(n)) for r in visible]) for n in names]
        scheduled = any(r.scheduler for r in visible)
        if cols == self._param_cols and scheduled == self._scheduled:
            return False
        self._param_cols, self._scheduled = cols, scheduled
        return self._layout_columns(self.size.width or self.app.size.width)

    def _ring(self, alerts) -> None:
        """A run seen running ended: the terminal bell and a toast, on any screen."""
        for alert in alerts:
            self.app.bell()
            self.notify(alert.message(), severity=alert.severity, timeout=12, markup=False)

    def _selection(self) -> list[RunRow]:
        """What the many-runs views take: the marked runs, else the group under the
        cursor, else the run under the cursor (with the baseline, when one is pinned)."""
        marked = [self.model.rows[m] for m in self.marked if m in self.model.rows]
        if marked:
            return marked
        entry = self._current_entry()
        if isinstance(entry, GroupRow):
            return list(entry.members)
        if entry is None:
            return []
        base = self.model.rows.get(self.pinned or "")
        return [entry] + ([base] if base is not None and base.id != entry.id else [])

    def action_pin(self) -> None:
        """Pin the run under the cursor as the baseline (on top, drawn over the others)."""
        row = self._current()
        if not row:
            return
        self.pinned = None if self.pinned == row.id else row.id
        self._shown = []
        self._refresh_model((set(), set(), set()))
        table = self.query_one("#runs", DataTable)
        if row.id in self._shown:
            table.move_cursor(row=self._shown.index(row.id), animate=False)

    def action_overlay(self) -> None:
        rows = self._selection()
        if rows:
            self.lab.open_overlay([r.run for r in rows], self.pinned)

    def action_records(self) -> None:
        row = self._current()
        if row:
            self.watched = row.id
            self.lab.open_records(row.run)

    def action_gpu(self) -> None:
        entry = self._current_entry() if self._shown else None
        self.lab.open_gpu(entry.run if isinstance(entry, RunRow) else None)

    def action_env_diff(self) -> None:
        rows = self._selection()
        if len(rows) == 1:
            self.lab.env_diff_with_counterpart(rows[0].run)
        elif rows:
            self.lab.open_env_diff([r.run for r in rows[:2]])

    def action_columns(self) -> None:
        """Edit the parameter columns: `auto`, a list, or +name/-name edits of auto."""
        from .prompt import PromptScreen

        known = sorted({n for r in self.model.rows.values() for n in r.params})

        def done(text: str | None) -> None:
            if text is None:
                return
            try:
                choose_columns([], text, known)
            except UserError as exc:
                self.notify(str(exc), severity="error", timeout=8, markup=False)
                return
            self._col_spec = text.strip() or None
            self._param_cols = []
            self._shown = []
            self._refresh_model((set(), set(), set()))

        current = self._col_spec or "auto"
        self.app.push_screen(
            PromptScreen("Parameter columns (auto, lr,seed or +name,-name):", current), done
        )


def param_sort_value(value: Any) -> tuple:
    """Numbers before text before missing, so a numeric parameter sorts numerically."""
    if isinstance(value, bool) or value is None:
        return (2, str(value))
    if isinstance(value, int | float):
        return (0, float(value))
    return (1, str(value))
