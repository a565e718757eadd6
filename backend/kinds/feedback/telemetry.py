"""What the dashboard shows while a stage runs: items done/failed/retrying and the API rate.

Counts go out as `progress` events (with `failed` and `retrying` fields) and as metrics
over wall time (`items_done`, `failed`, `retrying`, `api_requests_per_min`,
`api_retries`, `api_last_status`), throttled so a fast local stage does not flood
events.jsonl.
"""

from __future__ import annotations

import time
from typing import Any

from ...providers import ApiStats


class StageMeter:
    """Items done/failed of a stage: every change is reported as progress at once (local
    generation finishes a whole batch of items in the same instant, and a throttle would
    show the first of them until the next batch); the metrics over time are throttled."""

    def __init__(self, ctx: Any, stats: ApiStats | None, every: float = 1.0) -> None:
        self.ctx, self.stats, self.every = ctx, stats, every
        self.done = 0
        self.failed = 0
        self._last = 0.0
        self._shown: tuple[int, int, int] | None = None

    def start(self, name: str, total: int, done: int) -> None:
        self.ctx.phase(name, total=total)
        self.done, self.failed, self._shown = done, 0, None
        self.tick(force=True)

    def retrying(self) -> int:
        return int(self.stats.in_retry) if self.stats is not None else 0

    def tick(self, force: bool = False) -> None:
        now = time.monotonic()
        retrying = self.retrying()
        due = force or now - self._last >= self.every
        counts = (self.done, self.failed, retrying)
        if counts[:2] != (self._shown or (None, None))[:2] or (due and counts != self._shown):
            self._shown = counts
            self.ctx.progress(self.done, failed=self.failed, retrying=retrying)
        if not due:
            return
        self._last = now
        self.ctx.metric("items_done", self.done, step=self.done)
        self.ctx.metric("failed", self.failed, step=self.done)
        self.ctx.metric("retrying", retrying, step=self.done)
        if self.stats is not None:
            snap = self.stats.snapshot()
            self.ctx.metric("api_requests_per_min", snap["requests_per_min"], step=self.done)
            self.ctx.metric("api_retries", snap["retries"], step=self.done)
            self.ctx.metric("api_last_status", snap["last_status"], step=self.done)
