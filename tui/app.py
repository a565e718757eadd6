"""The labdeck dashboard: `labdeck` with no arguments.

The app only reads run directories and starts `labdeck …` subprocesses, so
quitting it leaves every run running, and a run written by another machine on a
shared filesystem looks the same as a local one.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import ClassVar

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen

from labdeck.backend.errors import UserError
from labdeck.backend.runs import Run, default_results_dir

from . import actions
from .launching import Launcher
from .screens.runs import RunsScreen
from .widgets.gpu_strip import Probe


class LabdeckApp(App[None]):
    """Screens are pushed on top of Runs; escape goes back, q quits (runs keep running)."""

    CSS_PATH = "app.tcss"
    TITLE = "labdeck"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark,f1", "help", "Help"),
        Binding("escape", "back", "Back", show=False),
    ]

    def __init__(
        self,
        results: Path | None = None,
        *,
        gpu_probe: Probe | None = None,
        gpu_interval: float = 2.0,
        poll_interval: float = 1.0,
        monitor_interval: float = 0.5,
        clock: Callable[[], float] = time.time,
        presets_dirs: list[Path] | None = None,
        process_probe: Callable[[int], tuple[float, float] | None] | None = None,
    ) -> None:
        super().__init__()
        self.results = Path(results) if results else default_results_dir()
        self.gpu_probe = gpu_probe
        self.gpu_interval = gpu_interval
        self.poll_interval = poll_interval
        self.monitor_interval = monitor_interval
        self.clock = clock
        self.presets_dirs = presets_dirs
        self.process_probe = process_probe  # runner pid -> (CPU %, RSS bytes); None: psutil
        self.launcher = Launcher(self)  # the one pending launch; outlives the form

    def on_mount(self) -> None:
        self.push_screen(RunsScreen())

    # ------------------------------------------------------------------ navigation

    def open_monitor(self, run: Run) -> None:
        from .screens.monitor import MonitorScreen

        self._watch(run)
        self.push_screen(MonitorScreen(run))

    def _watch(self, run: Run) -> None:
        """Back on Runs, the cursor is on the run last opened, however it was opened (a
        launch opens its new run): `s` there must stop the run the user just watched."""
        for screen in self.screen_stack:
            if isinstance(screen, RunsScreen):
                screen.watched = run.id

    def open_launch(self) -> None:
        from .screens.launch import LaunchScreen

        self.push_screen(LaunchScreen())

    def open_compare(self, runs: list[Run]) -> None:
        from .screens.compare import CompareScreen

        self.push_screen(CompareScreen(runs))

    def open_overlay(self, runs: list[Run], pinned: str | None = None) -> None:
        from .screens.overlay import OverlayScreen

        self.push_screen(OverlayScreen(runs, pinned))

    def open_records(self, run: Run) -> None:
        from .screens.records import RecordsScreen

        self._watch(run)
        self.push_screen(RecordsScreen(run))

    def open_gpu(self, run: Run | None = None) -> None:
        from .screens.gpu import GpuScreen

        self.push_screen(GpuScreen(run))

    def open_env_diff(self, runs: list[Run]) -> None:
        from .screens.envdiff import EnvDiffScreen

        self.push_screen(EnvDiffScreen(runs[0], runs[1]))

    def env_diff_with_counterpart(self, run: Run) -> None:
        from labdeck.backend.compare import counterpart

        try:
            other = counterpart(self.results, run)
        except UserError as exc:
            self.notify(
                f"{exc}; or mark two runs with space, or pin a baseline with b",
                severity="warning",
                timeout=8,
                markup=False,
            )
            return
        self.open_env_diff([other, run] if run.state().get("reproduction_of") else [run, other])

    def compare_with_counterpart(self, run: Run) -> None:
        """One run: compare it with its original, or with its newest reproduction."""
        from labdeck.backend.compare import counterpart

        try:
            other = counterpart(self.results, run)
        except UserError as exc:
            self.notify(
                f"{exc}; or mark two runs with space", severity="warning", timeout=8, markup=False
            )
            return
        original, repro = (other, run) if run.state().get("reproduction_of") else (run, other)
        self.open_compare([original, repro])

    def action_back(self) -> None:
        if len(self.screen_stack) > 2:
            self.pop_screen()

    def action_help(self) -> None:
        from .screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    # ------------------------------------------------------------------ run actions

    @work(thread=True, group="run-action")
    def run_verb(self, name: str, run: Run) -> None:
        """stop / resume / reproduce / delete, through the CLI, reported as a toast."""
        self.call_from_thread(self.notify, f"{name} {run.short_id}…", timeout=3)
        if name == "delete":
            try:
                message, ok = actions.delete(run), True
            except OSError as exc:
                message, ok = f"{run.path}: {exc.strerror}", False
        else:
            result = getattr(actions, name)(run, self.results)
            message, ok = result.message, result.ok
        self.call_from_thread(  # the CLI's own line, error text included: never markup
            self.notify,
            message,
            severity="information" if ok else "error",
            timeout=6,
            markup=False,
        )
        self.call_from_thread(self.refresh_runs)

    def confirm_kill(self, run: Run) -> None:
        """SIGKILL the runner after a yes: for a run that does not answer stop."""
        from .screens.confirm import ConfirmScreen

        def done(confirmed: bool | None) -> None:
            if confirmed:
                self.run_verb("kill", run)

        self.push_screen(
            ConfirmScreen(
                f"Kill {run.short_id} · {_title(run)} now (SIGKILL)?\n{run.id}\n"
                "The unit in hand is lost; finished records stay and resume continues from them."
            ),
            done,
        )

    def edit_tags(self, run: Run) -> None:
        from labdeck.backend.notes import Notes, parse_tags, read_notes, write_notes

        from .screens.prompt import PromptScreen

        notes = read_notes(run)

        def done(text: str | None) -> None:
            if text is None:
                return
            try:
                write_notes(run, Notes(parse_tags(text), notes.note))
            except (UserError, OSError) as exc:
                self.notify(str(exc), severity="error", timeout=8, markup=False)
                return
            self.refresh_runs()

        self.push_screen(
            PromptScreen(f"Tags of {run.id} (space separated):", " ".join(notes.tags)), done
        )

    def edit_note(self, run: Run) -> None:
        from labdeck.backend.notes import Notes, read_notes, write_notes

        from .screens.prompt import PromptScreen

        notes = read_notes(run)

        def done(text: str | None) -> None:
            if text is None:
                return
            try:
                write_notes(run, Notes(notes.tags, text))
            except (UserError, OSError) as exc:
                self.notify(str(exc), severity="error", timeout=8, markup=False)
                return
            self.refresh_runs()

        self.push_screen(
            PromptScreen(f"Note on {run.id}:", notes.note, "what this run is for"), done
        )

    def refresh_runs(self) -> None:
        for screen in self.screen_stack:
            if isinstance(screen, RunsScreen):
                screen.poll()

    # ------------------------------------------------------------------ palette

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Launch a run", "Pick a preset, edit it, launch it", self.open_launch)
        yield SystemCommand("Runs", "Back to the list of runs", self._to_runs)
        yield SystemCommand("Help", "Every key of every screen, by screen", self.action_help)
        runs_screen = next((s for s in self.screen_stack if isinstance(s, RunsScreen)), None)
        if isinstance(screen, RunsScreen) and runs_screen is not None:
            for label, action, help_text in (
                ("Open run", "open", "Monitor the selected run"),
                (
                    "Compare",
                    "compare",
                    "Compare marked runs, or the selected one with its reproduction",
                ),
                ("Stop run", "stop", "Ask the selected run to stop after its unit in hand"),
                ("Kill run", "kill", "SIGKILL the selected run's runner (asks first)"),
                ("Tag run", "tags", "Edit the selected run's tags"),
                ("Note on run", "note", "Edit the selected run's note"),
                ("Resume run", "resume", "Resume the selected run in the background"),
                ("Reproduce run", "reproduce", "Rerun the selected run from its config.json"),
                ("Delete run", "delete", "Delete the selected run directory (asks first)"),
            ):
                yield SystemCommand(label, help_text, getattr(runs_screen, f"action_{action}"))
        for label, action in (
            ("Stop", "stop"),
            ("Kill", "kill"),
            ("Resume", "resume"),
            ("Reproduce", "reproduce"),
        ):
            if hasattr(screen, "run_for_actions"):
                yield SystemCommand(
                    f"{label} this run",
                    f"{label} the run on this screen",
                    getattr(screen, f"action_{action}"),
                )

    def _to_runs(self) -> None:
        while len(self.screen_stack) > 2:
            self.pop_screen()


def _title(run: Run) -> str:
    try:
        return run.title
    except UserError:  # an unreadable config.json: the id still names the run
        return "?"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="labdeck", description="The labdeck dashboard.")
    p.add_argument("--results", metavar="DIR", help="results folder (default ./results)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = Path(args.results) if args.results else default_results_dir()
    if results.exists() and not results.is_dir():
        print(f"labdeck: error: {results}: not a directory")
        return 2
    # Subprocesses (launch, stop, …) must see the same results folder as the screen.
    os.environ["LABDECK_RESULTS"] = str(results)
    app = LabdeckApp(results)
    app.run()
    # A crash inside the app (a traceback was printed) must not look like success.
    return app.return_code or 0
