"""A launch from the form, followed until its run directory exists.

Starting a run takes seconds to tens of seconds on a loaded machine (the dry-run check,
then `labdeck run --detach`). The launch belongs to the app, not to the form, so
leaving the form loses nothing: the form (and the Runs screen's notifications) show
its stage while it is pending; a failure of the launcher process is reported in the
dashboard with its message; when the run directory exists the Monitor opens on it.
One launch at a time: asking again while one is pending is refused with its stage.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from . import actions

if TYPE_CHECKING:
    from .app import LabdeckApp

STAGES = {
    "checking": "checking the parameters (dry run)",
    "starting": "starting the runner",
}


@dataclass
class Launch:
    """What is being launched and how far it got."""

    label: str
    source_args: list[str]
    sets: list[str]
    title: str | None
    grid: list[str]
    stage: str = "checking"
    started: float = field(default_factory=time.monotonic)

    def line(self) -> str:
        waited = time.monotonic() - self.started
        return f"launching {self.label}: {STAGES.get(self.stage, self.stage)}… {waited:.0f}s"


@dataclass
class Outcome:
    """How a launch ended: the run (or group) id, or the message of what failed."""

    launch: Launch
    run_id: str | None = None
    error: str | None = None


class Launcher:
    """The app's one pending launch; `start` runs it in a worker thread owned by the app."""

    def __init__(self, app: LabdeckApp) -> None:
        self.app = app
        self.pending: Launch | None = None
        self.last: Outcome | None = None
        self.listeners: list[Callable[[Outcome], None]] = []

    def start(self, launch: Launch) -> str | None:
        """Start `launch`, or return why not (one is already pending)."""
        if self.pending is not None:
            return f"not launched twice: {self.pending.line()}"
        self.pending = launch
        self.last = None
        self.app.run_worker(
            lambda: self._work(launch),
            thread=True,
            group="launch",
            name="launch",
            exit_on_error=False,
        )
        return None

    def _work(self, launch: Launch) -> None:
        try:
            outcome = self._steps(launch)
        except Exception as exc:  # the launcher process could not even be started
            outcome = Outcome(launch, error=f"launcher failed: {type(exc).__name__}: {exc}")
        self.app.call_from_thread(self._finish, outcome)

    def _steps(self, launch: Launch) -> Outcome:
        results = self.app.results
        # The dry run checks what validation alone cannot see (a missing data file): a
        # run that would fail in its first seconds is not started.
        check = actions.dry_run(launch.source_args, launch.sets, results)
        if not check.ok:
            return Outcome(launch, error=f"not launched: {check.message}")
        launch.stage = "starting"
        result = actions.launch(launch.source_args, launch.sets, results, launch.title, launch.grid)
        run_id = actions.launched_run_id(result)
        if not run_id:
            return Outcome(launch, error=f"launch failed: {result.message}")
        if not (Path(results) / run_id).is_dir() and not launch.grid:
            return Outcome(
                launch, error=f"launch failed: {results / run_id} does not exist ({result.message})"
            )
        return Outcome(launch, run_id=run_id)

    def _finish(self, outcome: Outcome) -> None:
        self.pending = None
        self.last = outcome
        app = self.app
        if outcome.error:
            app.notify(outcome.error, severity="error", timeout=30, markup=False)
        else:
            app.notify(f"launched {outcome.run_id}", timeout=5, markup=False)
            app.refresh_runs()
        for listener in list(self.listeners):
            listener(outcome)
        if not self.listeners and outcome.run_id:
            self._open_from_runs(outcome.run_id)

    def _open_from_runs(self, run_id: str) -> None:
        """The form was left while pending: open the new run if the Runs table is in
        front (never pull the researcher away from another screen)."""
        from labdeck.backend.runs import Run

        from .screens.runs import RunsScreen

        run_dir = Path(self.app.results) / run_id
        if isinstance(self.app.screen, RunsScreen) and (run_dir / "config.json").is_file():
            self.app.open_monitor(Run(run_dir))
