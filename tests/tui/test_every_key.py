"""Every key of every screen, pressed with the fixture runs loaded: the app must still be
running afterwards, with no exception (a crash used to exit 0 after a traceback).

The `labdeck` subprocesses behind stop/resume/reproduce/kill/launch are replaced by a
recorder here: they would start real runners on the fixture runs, and what is under
test is each screen's handling of its keys. Their real behaviour is tested end to end
in test_e2e.py and the CLI tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.screen import ModalScreen

from labdeck.backend.runs import Run
from labdeck.tui import actions
from labdeck.tui.app import LabdeckApp
from labdeck.tui.screens.compare import CompareScreen
from labdeck.tui.screens.confirm import ConfirmScreen
from labdeck.tui.screens.envdiff import EnvDiffScreen
from labdeck.tui.screens.gpu import GpuScreen
from labdeck.tui.screens.help import HelpScreen
from labdeck.tui.screens.launch import LaunchScreen, SavePresetScreen
from labdeck.tui.screens.monitor import MonitorScreen
from labdeck.tui.screens.overlay import OverlayScreen
from labdeck.tui.screens.prompt import PromptScreen
from labdeck.tui.screens.records import RecordsScreen
from labdeck.tui.screens.runs import RunsScreen

SKIP = {"quit"}  # pressed last, on purpose


@pytest.fixture
def recorded_cli(monkeypatch):
    calls: list[list[str]] = []

    def fake(args, results, timeout=actions.CLI_TIMEOUT):
        calls.append(list(args))
        if "--dry-run" in args:
            return actions.CliResult(args, 2, "", "labdeck: error: data/x.csv: no such file")
        return actions.CliResult(args, 0, "done\n", "")

    monkeypatch.setattr(actions, "run_cli", fake)
    return calls


def keys_of(bindings) -> list[tuple[str, str]]:
    out = []
    for b in bindings:
        key, action = (b.key, b.action) if hasattr(b, "key") else (b[0], b[1])
        for k in key.split(","):
            out.append((k.strip(), action))
    return out


def healthy(app: LabdeckApp) -> None:
    assert app.is_running, "the app stopped"
    assert app.return_code in (None, 0), f"the app failed: return code {app.return_code}"


async def close_modals(pilot) -> None:
    for _ in range(4):
        if not isinstance(pilot.app.screen, ModalScreen):
            return
        await pilot.press("escape")
        await pilot.pause(0.05)


async def press_all(pilot, screen_type, open_screen, extra: list[str] = ()) -> list[str]:
    """Press each key the screen declares (and `extra`), reopening it when a key left it."""
    app = pilot.app
    pressed = []
    for key, action in [*keys_of(screen_type.BINDINGS), *((k, "") for k in extra)]:
        if action in SKIP:
            continue
        if not isinstance(app.screen, screen_type):
            await close_modals(pilot)
            while len(app.screen_stack) > 2:
                app.pop_screen()
                await pilot.pause(0.05)
            await open_screen()
        await pilot.press(key)
        await pilot.pause(0.05)
        healthy(app)
        await close_modals(pilot)
        healthy(app)
        pressed.append(key)
    await app.workers.wait_for_complete()
    healthy(app)
    return pressed


async def test_every_binding_of_every_screen(fixture_dir, make_app, recorded_cli):
    # 80x24: the narrow layouts (folded panels, priority footer, short columns); the
    # wide ones are drawn by the 120x40 snapshots.
    size = (80, 24)
    app = make_app(poll_interval=0.2, monitor_interval=0.2, gpu_interval=0)
    original = Run(Path("results") / fixture_dir["original"])
    repro = Run(Path("results") / fixture_dir["repro"])
    kt = Run(Path("results") / fixture_dir["interrupted"])
    async with app.run_test(size=size) as pilot:
        await pilot.pause(0.3)

        async def runs() -> None:
            await pilot.pause(0.05)

        async def monitor() -> None:
            app.open_monitor(kt)
            await pilot.pause(0.2)

        async def compare() -> None:
            app.open_compare([original, repro])
            await pilot.pause(0.2)

        async def launch() -> None:
            app.open_launch()
            await pilot.pause(0.4)

        # Runs: every key, Enter on the table opens the Monitor.
        await press_all(pilot, RunsScreen, runs, extra=["enter", "down", "enter"])
        await press_all(pilot, MonitorScreen, monitor, extra=["tab", "enter", "1", "enter"])
        await press_all(pilot, CompareScreen, compare, extra=["enter", "tab", "enter"])

        # The workspace screens, each over runs of the fixture folder.
        async def overlay() -> None:
            app.open_overlay([original, repro, kt], original.id)
            await pilot.pause(0.3)

        async def records() -> None:
            app.open_records(original)
            await pilot.pause(0.2)

        async def gpu() -> None:
            app.open_gpu(kt)
            await pilot.pause(0.2)

        async def env() -> None:
            app.open_env_diff([original, repro])
            await pilot.pause(0.2)

        await press_all(pilot, OverlayScreen, overlay, extra=["slash", "x", "enter", "m", "n"])
        await press_all(pilot, RecordsScreen, records, extra=["down", "enter", "slash", "a"])
        await press_all(pilot, GpuScreen, gpu)
        await press_all(pilot, EnvDiffScreen, env, extra=["down"])
        # Launch: Enter on the preset list (it used to crash), Enter in the form, and the
        # launch key, which the failing dry run must block.
        await launch()
        await pilot.press("down", "enter")
        await pilot.pause(0.3)
        healthy(app)
        await pilot.press("enter", "tab", "enter")
        await pilot.pause(0.1)
        healthy(app)
        await press_all(pilot, LaunchScreen, launch)
        assert any("--dry-run" in c for c in recorded_cli)
        assert not any("--detach" in c and "run" in c for c in recorded_cli), (
            "a run was launched although its dry run failed"
        )
        # the failed launch is reported (not a toast that vanishes) and nothing is pending
        assert app.launcher.pending is None
        assert app.launcher.last is not None and "no such file" in (app.launcher.last.error or "")
        # Modals: each of their keys.
        for modal, key_list in (
            (ConfirmScreen("sure?"), keys_of(ConfirmScreen.BINDINGS)),
            (PromptScreen("tags?", "a b"), [("enter", ""), *keys_of(PromptScreen.BINDINGS)]),
            (SavePresetScreen("presets/x.toml"), keys_of(SavePresetScreen.BINDINGS)),
            (HelpScreen(), keys_of(HelpScreen.BINDINGS)),
        ):
            for key, _ in key_list:
                await close_modals(pilot)
                app.push_screen(type(modal)(*_args(modal)))
                await pilot.pause(0.05)
                await pilot.press(key)
                await pilot.pause(0.05)
                healthy(app)
        await close_modals(pilot)
        for key, action in keys_of(LabdeckApp.BINDINGS):
            if action not in SKIP:
                await pilot.press(key)
                await pilot.pause(0.05)
                healthy(app)
                await close_modals(pilot)
        await pilot.press("q")
        await pilot.pause(0.1)
    assert app.return_code == 0


def _args(modal) -> tuple:
    if isinstance(modal, ConfirmScreen):
        return (modal.question,)
    if isinstance(modal, PromptScreen):
        return (modal.question, modal.value)
    if isinstance(modal, SavePresetScreen):
        return (modal.default,)
    return ()


def test_a_crash_in_the_app_exits_non_zero(fixture_dir, monkeypatch):
    """The dashboard's entry point returns the app's failure code, never 0 after a traceback."""
    from labdeck.tui import app as app_module

    class Boom(LabdeckApp):
        def on_mount(self) -> None:
            raise RuntimeError("boom")

        def run(self, *a, **kw):  # headless: the same run loop, no terminal needed
            return super().run(*a, headless=True, **kw)

    monkeypatch.setattr(app_module, "LabdeckApp", Boom)
    assert app_module.main(["--results", "results"]) == 1
