"""Seconds left in the current phase, from the pace of this attempt.

`ls` reads the estimate from state.json (no event stream to replay) and the progress
events carry it for any other reader. The pace counts only units finished in this
attempt: a resumed phase that reports its earlier units at once must not look fast.
"""

from __future__ import annotations

# A progress report this soon after its phase started says what earlier attempts had
# already finished (kinds report that first), so it sets the baseline of the pace.
BASELINE_SECONDS = 2.0


class PhaseClock:
    """The pace of one phase in this attempt."""

    def __init__(self, started: float) -> None:
        self.t0 = started
        self.done0: int | None = None

    def seconds_left(self, done: int | None, total: int | None, now: float) -> float | None:
        """Estimated seconds to `total`; None until a unit of this attempt has finished."""
        if done is None or not total:
            return None
        if done >= total:
            return 0.0
        if self.done0 is None:
            if now - self.t0 <= BASELINE_SECONDS:
                self.done0, self.t0 = done, now
                return None
            self.done0 = 0
        made = done - self.done0
        if made <= 0 or now <= self.t0:
            return None
        return (now - self.t0) / made * (total - done)
