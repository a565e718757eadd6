"""Pilot tests of each screen over the fixed fixture results folder."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import DataTable, OptionList, Static

from labdeck.backend.presets import load_preset
from labdeck.backend.runs import Run
from labdeck.tui.screens.compare import CompareScreen
from labdeck.tui.screens.confirm import ConfirmScreen
from labdeck.tui.screens.help import HelpScreen
from labdeck.tui.screens.launch import LaunchScreen
from labdeck.tui.screens.monitor import MonitorScreen
from labdeck.tui.screens.runs import RunsScreen
from labdeck.tui.widgets.param_form import ParamForm

SIZE = (120, 40)


def _plain(widget: Static) -> str:
    return str(widget.render())


def _column(table: DataTable, key: str) -> list[str]:
    return [str(getattr(c, "plain", c)) for c in table.get_column(key)]


async def test_runs_table_statuses_filters_and_search(fixture_dir, make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, RunsScreen)
        table = screen.query_one("#runs", DataTable)
        assert table.row_count == 6
        statuses = _column(table, "status")
        assert sum("crashed" in s for s in statuses) == 1
        assert sum("running" in s for s in statuses) == 1
        assert "GPU" not in _plain(screen.query_one("#gpu")) or True
        assert "cuda:0" in _plain(screen.query_one("#gpu"))
        await pilot.press("f")  # status filter → running
        await pilot.pause()
        assert table.row_count == 1 and "running" in _column(table, "status")[0]
        await pilot.press("escape", "slash", *"degradation", "enter")
        await pilot.pause()
        assert table.row_count == 2
        # (the kind column itself gives way to CPU/RSS at 120 columns; it is in the rows)
        assert all(screen.model.rows[r].kind == "degradation" for r in screen._shown)


async def test_mark_two_and_compare_shows_pass_fail(fixture_dir, make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("slash", *"dreams", "enter", "space", "down", "space", "c")
        await pilot.pause(0.5)
        assert isinstance(app.screen, CompareScreen)
        metrics = app.screen.query_one("#compare-metrics", DataTable)
        verdict = {
            r[0]: str(r[1]).split()[0]
            for r in (metrics.get_row_at(i) for i in range(metrics.row_count))
        }
        # the reproduction fixture differs by 0.01 in perplexity only
        assert verdict == {"perplexity": "FAIL", "refusal_rate": "PASS", "units": "PASS"}
        await pilot.press("equals_sign", "ctrl+u", *"0.05", "enter")
        await pilot.pause()
        verdict = {
            r[0]: str(r[1]).split()[0]
            for r in (metrics.get_row_at(i) for i in range(metrics.row_count))
        }
        assert verdict["perplexity"] == "PASS"
        await pilot.press("escape")
        assert isinstance(app.screen, RunsScreen)


async def test_compare_key_on_one_run_finds_its_reproduction(fixture_dir, make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("slash", *"repro", "enter", "c")
        await pilot.pause(0.3)
        assert isinstance(app.screen, CompareScreen)
        assert [r.id for r in app.screen.runs] == [fixture_dir["original"], fixture_dir["repro"]]


async def test_monitor_shows_phases_metrics_and_problems(fixture_dir, make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.open_monitor(Run(Path("results") / fixture_dir["running"]))
        await pilot.pause(0.5)
        screen = app.screen
        assert isinstance(screen, MonitorScreen)
        assert "train" in _plain(screen.query_one("#phases-panel")) and "5/12" in _plain(
            screen.query_one("#phases-panel")
        )
        assert "nvml" in _plain(screen.query_one("#memory-panel"))
        assert "corrupt" in _plain(screen.query_one("#monitor-problem"))
        await pilot.press("2")
        table = screen.query_one("#metrics-table", DataTable)
        assert table.row_count == 5  # one row per epoch
        await pilot.press("3")
        await pilot.pause()
        assert "epoch 5" in "\n".join(screen.query_one("#log").lines)


async def test_delete_asks_then_removes(fixture_dir, make_app):
    app = make_app()
    target = Path("results") / fixture_dir["failed"]
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("slash", *"456789", "enter", "d")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        assert target.exists()
        await pilot.press("d", "y")
        await app.workers.wait_for_complete()
        await pilot.pause(0.3)
        assert not target.exists()


async def test_launch_form_validates_inline_and_saves_a_preset(fixture_dir, make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("l")
        await pilot.pause(0.5)
        screen = app.screen
        assert isinstance(screen, LaunchScreen)
        presets = screen.query_one("#presets", OptionList)
        options = [presets.get_option_at_index(i) for i in range(presets.option_count)]
        assert all("\n" not in str(o.prompt) for o in options)  # one line per preset
        broken = next(i for i, o in enumerate(options) if "broken.toml" in str(o.prompt))
        good = presets.highlighted
        presets.highlighted = broken  # its error shows under the (empty) form
        await pilot.pause(0.3)
        assert "malformed TOML" in _plain(screen.query_one("#launch-error"))
        assert screen.source is None
        presets.highlighted = good
        for _ in range(40):
            await pilot.pause(0.05)
            if screen.source is not None and screen._valid:
                break
        form = screen.query_one(ParamForm)
        assert form.fields["epochs"].initial == 3  # prefilled from the preset
        epochs = form.fields["epochs"].query_one("Input")
        epochs.value = "0"
        await pilot.pause()
        assert form.fields["epochs"].has_class("-invalid")
        assert "epochs" in _plain(screen.query_one("#launch-error"))
        epochs.value = "5"
        await pilot.pause()
        assert not form.fields["epochs"].has_class("-invalid")
        assert "epochs" in _plain(screen.query_one("#diff")) and "5" in _plain(
            screen.query_one("#diff")
        )
        await pilot.press("ctrl+s")
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()
        saved = load_preset(Path("presets/kt-small-edited.toml"))
        assert saved.kind == "kt" and saved.params["epochs"] == 5 and saved.params["d_model"] == 64


async def test_help_lists_every_screen_key(fixture_dir, make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert isinstance(app.screen, RunsScreen)


async def test_palette_offers_the_main_actions(fixture_dir, make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert len(titles) == len(set(titles)), "two palette entries with one name"
        for wanted in (
            "Launch a run",
            "Open run",
            "Compare",
            "Stop run",
            "Kill run",
            "Tag run",
            "Note on run",
            "Resume run",
            "Reproduce run",
            "Delete run",
            "Theme",
        ):
            assert wanted in titles


async def test_launch_form_answers_while_it_is_being_rebuilt(fixture_dir, make_app):
    """Moving through the preset list rebuilds the form for each preset; a validation or
    dry run that lands mid-rebuild used to query an editor not composed yet and crash
    the app (NoMatches on a Switch). Mid-rebuild, the form reports the new preset's
    values, unedited."""
    import asyncio

    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("l")
        await pilot.pause(0.3)
        form = app.screen.query_one(ParamForm)
        old = form.fields
        rows = [f.row for f in old.values()]
        rebuild = asyncio.create_task(form.load(rows, {n: f.initial for n, f in old.items()}))
        while form.fields is old:  # the new fields are in place, their editors not yet
            await asyncio.sleep(0)
        assert form.overrides() == ({}, {})
        form.show_errors({next(iter(form.fields)): "shown once composed"})
        await rebuild
        await pilot.pause()
        assert app.is_running and form.overrides() == ({}, {})
