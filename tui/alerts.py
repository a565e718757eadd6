"""Run endings worth a sound: a run this dashboard saw running that completes, fails
or crashes. Statuses present at the first scan are history, not news."""

from __future__ import annotations

from dataclasses import dataclass

ENDINGS = ("completed", "failed", "crashed")


@dataclass(frozen=True)
class Alert:
    run_id: str
    short_id: str
    title: str
    status: str
    error: str | None = None

    @property
    def severity(self) -> str:
        return "information" if self.status == "completed" else "error"

    def message(self) -> str:
        line = f"{self.short_id} {self.title}: {self.status}"
        return f"{line}: {self.error}" if self.error and self.status != "completed" else line


class StatusWatch:
    """Remembers each run's last status; `update` returns the endings seen since."""

    def __init__(self) -> None:
        self._last: dict[str, str] | None = None

    def update(self, rows) -> list[Alert]:
        now = {r.id: r.status for r in rows}
        before, self._last = self._last, now
        if before is None:
            return []
        alerts = []
        for r in rows:
            was = before.get(r.id)
            if was in ("running", "queued") and r.status in ENDINGS and r.status != was:
                alerts.append(Alert(r.id, r.run.short_id, r.title, r.status, r.error))
        return alerts
