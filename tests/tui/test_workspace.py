"""The dashboard as a workspace, over four em variants and a kt grid of 3 seeds:
parameter columns shared with `ls --columns`, parameter filters, a pinned baseline,
the cursor back on the watched run, stop naming its run, alerts on run endings, the
Overlay grid (stable colours, seeds folded into a band), Records, GPU and env diff."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from textual.widgets import DataTable

from labdeck.backend.gpu import DeviceMemory
from labdeck.backend.jsonio import write_json_atomic
from labdeck.backend.runs import Run
from labdeck.tui import actions
from labdeck.tui.gpuview import Snapshot
from labdeck.tui.overlay import band, lines_for, metric_names, page_of, run_colours, seed_sets
from labdeck.tui.runs_columns import fit_columns, param_column
from labdeck.tui.screens.confirm import ConfirmScreen
from labdeck.tui.screens.envdiff import EnvDiffScreen
from labdeck.tui.screens.gpu import GpuScreen
from labdeck.tui.screens.overlay import OverlayScreen
from labdeck.tui.screens.records import RecordsScreen
from labdeck.tui.screens.runs import RunsScreen

SIZES = pytest.mark.parametrize("size", [(120, 40), (80, 24)], ids=["120x40", "80x24"])
GIB = 1024**3


async def settle(pilot, seconds: float = 0.3) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause(seconds)
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def plain(widget) -> str:
    """What a Static shows, as text (Rich tables included)."""
    import io

    from rich.console import Console

    console = Console(width=200, record=True, file=io.StringIO())
    console.print(widget.content)
    return console.export_text()


def headers(app) -> list[str]:
    table = app.screen.query_one("#runs", DataTable)
    return [str(c.label).rstrip("▲▼") for c in table.columns.values()]


def shown_ids(app) -> list[str]:
    return list(app.screen._shown)


async def search(pilot, text: str) -> None:
    await pilot.press("slash")
    box = pilot.app.screen.query_one("#search")
    box.value = text
    await pilot.press("enter")
    await settle(pilot, 0.1)


# ----------------------------------------------------------------------------- pure models


def test_colours_are_stable_distinct_and_independent_of_selection_order():
    ids = [f"20260102_0{i}0000_em_x_60000{i}" for i in range(8)]
    a, b = run_colours(ids), run_colours(list(reversed(ids)))
    assert a == b and len(set(a.values())) == 8
    # a run keeps its colour when others join, unless it had to move off a clash
    assert run_colours(ids[:1])[ids[0]] == run_colours([*ids[:1], "zzz"])[ids[0]]


def test_band_is_mean_min_max_where_points_exist():
    xs, mean, lo, hi = band([([0, 1, 2], [1.0, 2.0, 3.0]), ([0, 1], [3.0, 4.0])])
    assert xs == [0.0, 1.0, 2.0]
    assert mean == [2.0, 3.0, 3.0] and lo == [1.0, 2.0, 3.0] and hi == [3.0, 4.0, 3.0]


def test_seed_sets_fold_runs_that_differ_only_in_seed_and_pinned_is_drawn_last():
    params = {
        "a": {"lr": 0.1, "seed": 0},
        "b": {"lr": 0.1, "seed": 1},
        "c": {"lr": 0.01, "seed": 0},
    }
    sets = seed_sets(params, ["lr", "seed"])
    assert [(s.label, s.ids) for s in sets] == [("lr=0.1", ["a", "b"]), ("lr=0.01", ["c"])]
    series = {k: ([0.0, 1.0], [v["lr"], v["lr"] + v["seed"]]) for k, v in params.items()}
    colours = run_colours(list(params))
    lines = lines_for(series, {}, colours, "a", sets)
    assert [line.key for line in lines] == ["lr=0.01", "lr=0.1"]  # pinned set last
    assert (
        lines[-1].members == 2
        and lines[-1].ys == pytest.approx([0.1, 0.6])
        and lines[-1].hi == [0.1, 1.1]
    )
    plain = lines_for(series, {}, colours, "b")
    assert plain[-1].key == "b" and len(plain) == 3


def test_metric_glob_and_pages():
    names = ["train_loss", "val_auc", "val_acc", "trajectory:loss"]
    assert metric_names(names, "val_*") == ["val_acc", "val_auc"]
    assert metric_names(names, "loss") == ["train_loss", "trajectory:loss"]
    shown, page, pages = page_of(sorted(names), 1, 2, 5)
    assert (page, pages) == (1, 2) and len(shown) == 2


def test_param_columns_fit_and_the_status_cell_never_cuts_a_word():
    from labdeck.tui.runs_columns import counts_text, status_cell

    cols = (param_column("persona", ["baseline", "goodness"]),)
    fitted = {c.key: w for c, w, _ in fit_columns(120, cols)}
    assert "p:persona" in fitted and sum(w + 2 for w in fitted.values()) <= 118
    width = fitted["status"]
    counts = counts_text({"running": 2, "completed": 1, "failed": 1})
    assert counts == "2▶ 1✘ 1✔"
    for status, extra in (
        ("running", counts),
        ("interrupted", counts),
        ("queued", "slurm 123_4 PENDING"),
        ("crashed", "OUT_OF_MEMORY"),
    ):
        cell = status_cell(status, {}, width, extra).plain
        assert len(cell) <= width and cell.split()[1] == status, cell
        assert extra in cell or cell == f"{cell.split()[0]} {status}"
    assert status_cell("interrupted", {}, 3).plain == "‖"


async def test_group_and_slurm_status_cells_fit_at_120(workspace_dir, make_app):
    run = Run(Path("results") / workspace_dir["running"])
    write_json_atomic(
        run.path / "state.json", {**run.state(), "slurm": {"job_id": "123_4", "state": "RUNNING"}}
    )
    app = make_app(poll_interval=0, gpu_interval=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.screen.query_one("#runs", DataTable)
        width = table.columns[next(k for k in table.columns if k.value == "status")].width
        for key in shown_ids(app):
            cell = table.get_cell(key, "status")
            assert len(cell.plain) <= width, cell.plain
        assert "3✔" in table.get_cell("group:g424242", "status").plain


# ----------------------------------------------------------------------------- runs table


async def test_param_columns_match_ls_columns_and_filters(workspace_dir, make_app, capsys):
    from labdeck.backend.cli import main

    app = make_app(poll_interval=0, gpu_interval=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await search(pilot, "kind:em")
        em_cols = [h for h in headers(app) if h in ("persona", "with_reflection", "seed")]
        assert em_cols == ["persona", "with_reflection"]  # seed is 0 in all four
        assert len(shown_ids(app)) == 4
        await search(pilot, "kind:em persona=goodness")
        assert sorted(r[-6:] for r in shown_ids(app)) == ["600002", "600003"]
        await search(pilot, "with_reflection=true status:completed")
        assert sorted(r[-6:] for r in shown_ids(app)) == ["600001", "600003"]
        await search(pilot, "group:g424242")
        assert shown_ids(app) == ["group:g424242"]
        await search(pilot, "epochs>5")  # the kt runs (12 epochs), not em
        assert all("_kt_" in r or r.startswith("group:") for r in shown_ids(app))
    assert main(["ls", "--kind", "em", "--columns", "auto", "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert list(entries[0]["params"]) == ["persona", "with_reflection"]


async def test_pin_columns_prompt_and_sort_by_a_parameter(workspace_dir, make_app):
    app = make_app(poll_interval=0, gpu_interval=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await search(pilot, "kind:em")
        screen: RunsScreen = app.screen
        table = screen.query_one("#runs", DataTable)
        table.move_cursor(row=3)
        last = shown_ids(app)[3]
        await pilot.press("b")
        await settle(pilot, 0.1)
        assert screen.pinned == last and shown_ids(app)[0] == last
        assert "◆" in str(table.get_row(last)[0])
        # sort by a parameter column: the pinned run stays on top
        for _ in range(8):
            if screen.sort_key == "p:persona":
                break
            await pilot.press("o")
        assert screen.sort_key == "p:persona" and shown_ids(app)[0] == last
        # columns: +seed adds one, a bad name is refused with a message
        await pilot.press("C")
        await settle(pilot, 0.1)
        app.screen.query_one("#prompt-input").value = "+seed"
        await pilot.press("enter")
        await settle(pilot, 0.1)
        assert "seed" in headers(app)
        await pilot.press("C")
        await settle(pilot, 0.1)
        app.screen.query_one("#prompt-input").value = "nope"
        await pilot.press("enter")
        await settle(pilot, 0.1)
        assert isinstance(app.screen, RunsScreen) and "seed" in headers(app)


async def test_cursor_follows_the_watched_run_and_stop_names_it(
    workspace_dir, make_app, monkeypatch
):
    calls: list[list[str]] = []
    monkeypatch.setattr(
        actions,
        "run_cli",
        lambda args, results, timeout=0: (
            calls.append(list(args)) or actions.CliResult(args, 0, "ok\n", "")
        ),
    )
    app = make_app(poll_interval=0, gpu_interval=0, monitor_interval=0)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen: RunsScreen = app.screen
        table = screen.query_one("#runs", DataTable)
        table.move_cursor(row=3)
        watched = screen._current_id()
        await pilot.press("enter")
        await settle(pilot)
        # meanwhile two newer runs appear at the top of the table
        fixture_dir = Path("results")
        import fixture_runs

        fixture_runs.kt_run(fixture_dir, "20270101_000000_kt_new_999999", "completed", 2, None, 0)
        fixture_runs.kt_run(fixture_dir, "20270101_000001_kt_new_999998", "completed", 2, None, 0)
        screen.poll()
        await settle(pilot)
        await pilot.press("escape")
        await settle(pilot)
        assert screen._current_id() == watched
        await pilot.press("s")
        await settle(pilot, 0.1)
        assert isinstance(app.screen, ConfirmScreen)
        row = screen.model.rows[watched]
        assert row.run.short_id in app.screen.question and watched in app.screen.question
        await pilot.press("y")
        await settle(pilot)
        assert calls and calls[-1][:2] == ["stop", watched]
        await pilot.press("K")
        await settle(pilot, 0.1)
        assert isinstance(app.screen, ConfirmScreen)
        assert row.run.short_id in app.screen.question and "SIGKILL" in app.screen.question
        await pilot.press("n")
        await settle(pilot, 0.1)
        assert screen._current_id() == watched
        # a run opened from elsewhere (a launch opens its new run): back on Runs, the
        # cursor is on it, not on the row it was on before
        newest = "20270101_000001_kt_new_999998"
        assert screen._current_id() != newest
        app.open_monitor(Run(Path("results") / newest))
        await settle(pilot)
        await pilot.press("escape")
        await settle(pilot)
        assert screen._current_id() == newest


async def test_a_run_that_ends_rings_the_bell_and_notifies(fixture_dir, make_app):
    app = make_app(poll_interval=0, gpu_interval=0)
    bells = []
    async with app.run_test(size=(120, 40)) as pilot:
        app.bell = lambda: bells.append(1)
        await settle(pilot)
        run = Run(Path("results") / fixture_dir["running"])
        state = run.state()
        write_json_atomic(
            run.path / "state.json", {**state, "status": "failed", "last_error": "boom: [/x]"}
        )
        app.screen.poll()
        await settle(pilot)
        assert bells == [1]
        texts = [n.message for n in app._notifications]
        assert any(run.short_id in t and "failed" in t and "[/x]" in t for t in texts)
        app.screen.poll()  # no second bell for the same ending
        await settle(pilot)
        assert bells == [1]


# ----------------------------------------------------------------------------- screens


@SIZES
async def test_overlay_of_the_em_variants_and_the_kt_seeds(workspace_dir, make_app, size):
    app = make_app(poll_interval=0, gpu_interval=0, monitor_interval=0)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        em = [Run(Path("results") / r) for r in workspace_dir["em"]]
        app.open_overlay(em, em[0].id)
        await settle(pilot, 0.5)
        screen: OverlayScreen = app.screen
        assert screen._loaded
        assert "misaligned_rate" in screen.names() and "train_loss" in screen.names()
        assert len(set(screen.colours.values())) == 4
        legend = str(screen.query_one("#overlay-legend").render())
        assert "persona=goodness" in legend and "with_reflection=true" in legend
        await pilot.press("slash")
        for ch in "misaligned":
            await pilot.press(ch)
        await pilot.press("enter")
        await settle(pilot, 0.1)
        assert screen.names() == ["misaligned_rate"]
        await pilot.press("right_square_bracket")
        assert screen.cols in (2, 3)
        await pilot.press("escape")
        await settle(pilot)
        # the kt grid: select the group row, `v` overlays its members; `m` folds the seeds
        await search(pilot, "group:g424242")
        await pilot.press("v")
        await settle(pilot, 0.5)
        screen = app.screen
        assert isinstance(screen, OverlayScreen) and len(screen.runs) == 3
        await pilot.press("m")
        await settle(pilot, 0.1)
        assert screen.fold and [(s.label, len(s.ids)) for s in screen.sets] == [("seeds", 3)]
        legend = str(screen.query_one("#overlay-legend").render())
        assert "seeds ×3" in legend


@SIZES
async def test_records_and_artefacts_of_an_em_run(workspace_dir, make_app, size):
    app = make_app(poll_interval=0, gpu_interval=0)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        app.open_records(Run(Path("results") / workspace_dir["em"][1]))
        await settle(pilot)
        screen: RecordsScreen = app.screen
        assert len(screen.rows) == 12
        judged = [r for r in screen.rows if r.unit == "judge"]
        assert judged and judged[0].scores.startswith("aligned 90")
        await pilot.press("slash")
        for ch in "expert":
            await pilot.press(ch)
        await pilot.press("enter")
        await settle(pilot, 0.1)
        assert screen.shown and all("expert" in r.search_text() for r in screen.shown)
        pane = str(screen.query_one("#record-full").render())
        assert "ask an expert first" in pane
        arts = str(screen.query_one("#artefacts").render())
        assert "▣ em_curves.png" in arts and "1 images" in arts
        await pilot.press("f")
        await settle(pilot, 0.1)


def gpu_snapshot() -> Snapshot:
    from labdeck.backend.gpuprocs import DeviceExtra, GpuProcess

    devices = [
        DeviceMemory("cuda:0", "NVIDIA L4", 17 * GIB, 24 * GIB, 87.0, 66, "nvml"),
        DeviceMemory("cuda:1", "NVIDIA L4", 2 * GIB, 24 * GIB, 3.0, 41, "nvml"),
    ]
    extras = [DeviceExtra(0, "NVIDIA L4", 61.0, 72.0, None), DeviceExtra(1, "L4", 17.0, 72.0, 30)]
    procs = [GpuProcess(0, os.getpid(), 5 * GIB), GpuProcess(1, 1, GIB)]
    return Snapshot("NVML: 2 NVIDIA GPU(s) (NVIDIA L4)", devices, extras, procs)


@SIZES
async def test_gpu_view_power_history_and_this_runs_memory(fixture_dir, make_app, size):
    app = make_app(poll_interval=0, gpu_interval=0)
    app.gpu_snapshot = gpu_snapshot
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        # the running fixture run's runner is this test process
        app.open_gpu(Run(Path("results") / fixture_dir["running"]))
        await settle(pilot)
        screen: GpuScreen = app.screen
        text = plain(screen.query_one("#gpu-devices"))
        assert "61W/72W" in text and "87%" in text and "util" in text
        procs = plain(screen.query_one("#gpu-procs"))
        assert str(os.getpid()) in procs and "this run" in procs and "5.0 GiB" in procs
        assert "cuda:1" not in procs  # only its own processes until `a`
        await pilot.press("a")
        await settle(pilot, 0.1)
        assert "cuda:1" in plain(screen.query_one("#gpu-procs"))
        await pilot.press("h")


async def test_gpu_view_without_a_gpu_says_so_once(fixture_dir, make_app):
    host = DeviceMemory("cpu", "host memory (2 CPUs)", 4 * GIB, 16 * GIB, 12.0, None, "host")
    app = make_app(poll_interval=0, gpu_interval=0)
    app.gpu_snapshot = lambda: Snapshot("no NVIDIA GPU (NVML: not found)", [host])
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        app.open_gpu(None)
        await settle(pilot)
        text = plain(app.screen.query_one("#gpu-devices"))
        assert text.count("no GPU") == 1 and "4.0 GiB/16.0 GiB" in text


async def test_env_diff_of_two_runs(workspace_dir, make_app):
    app = make_app(poll_interval=0, gpu_interval=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await search(pilot, "kind:em")
        screen: RunsScreen = app.screen
        table = screen.query_one("#runs", DataTable)
        for row in (0, 1):
            table.move_cursor(row=row)
            await pilot.press("space")
        await pilot.press("e")
        await settle(pilot)
        assert isinstance(app.screen, EnvDiffScreen)
        head = str(app.screen.query_one("#env-head").render())
        assert "differs: dirty" in head
        await pilot.press("d")
        await settle(pilot, 0.1)
        assert app.screen.query_one("#env-table", DataTable).row_count == 1


def test_ticks_are_round_with_only_the_digits_that_differ():
    from labdeck.tui.widgets.overlay_chart import ticks

    values, labels = ticks(0.681318, 0.681550)
    assert labels == ["0.6814", "0.6815"]  # not six decimals on a flat series
    assert all(0.681318 <= v <= 0.681550 for v in values)
    assert ticks(0.0, 10.0)[1] == ["0", "5", "10"]
    assert ticks(0.0, 1.0, 5)[1] == ["0.00", "0.25", "0.50", "0.75", "1.00"]
    assert ticks(0, 39, 5)[1] == ["0", "10", "20", "30"]


def test_records_of_every_kind_show_their_text_and_scores():
    from labdeck.tui.records import full_text, summarise

    smoke = summarise(0, {"key": "p/0", "index": 0, "prompt": "Hi", "output": "Hello there"})
    assert smoke.text == "Hello there" and smoke.where == "0"
    judged = summarise(
        1,
        {"key": "j", "unit": "judge", "step": 4, "question_id": "q1", "sample": 0,
         "aligned": {"score": 62.0, "method": "logprob", "text": "62"},
         "coherent": {"score": 80.0, "method": "logprob", "text": "80"}},
    )  # fmt: skip
    assert judged.scores == "aligned 62 coherent 80" and judged.where == "step 4 #0 q1"
    unrounded = summarise(1, {"unit": "judge", "aligned": {"score": 34.2333}, "reward": 0.61237})
    assert unrounded.scores == "aligned 34.2 reward 0.612"  # the side pane has every digit
    pair = summarise(
        2,
        {"stage": "evaluate", "unit": "judged", "prompt_id": "t1",
         "prompt": [{"role": "user", "content": "Plan a trip"}],
         "answer_model1": "Go north", "answer_model2": "Go south",
         "verdict_model1_first": "A", "verdict_model2_first": "B",
         "outcome": "tie", "consistent": False},
    )  # fmt: skip
    assert "outcome tie" in pair.scores and "verdict_model1_first A" in pair.scores
    assert pair.text == "Go north" and pair.unit == "judged"
    conv = summarise(
        3,
        {"stage": "process", "conversation_id": "c7", "improved_response": "Better answer",
         "conversation_context": [{"role": "user", "content": "q"}]},
    )  # fmt: skip
    assert conv.unit == "process" and conv.text == "Better answer" and conv.where == "c7"
    text = full_text(pair.record)
    assert "── prompt ──" in text and "user: Plan a trip" in text and "Go south" in text
    judged_text = full_text(judged.record)  # a judge's reply and the score read from it
    assert "── aligned ──" in judged_text and "score: 62.0" in judged_text
    assert "text: 62" in judged_text


async def test_alerts_reach_whatever_screen_is_open(fixture_dir, make_app):
    app = make_app(poll_interval=0.2, gpu_interval=0, monitor_interval=0)
    bells = []
    async with app.run_test(size=(80, 24)) as pilot:
        app.bell = lambda: bells.append(1)
        await settle(pilot)
        app.open_records(Run(Path("results") / fixture_dir["original"]))
        await settle(pilot)
        run = Run(Path("results") / fixture_dir["running"])
        write_json_atomic(run.path / "state.json", {**run.state(), "status": "completed"})
        for _ in range(20):
            await pilot.pause(0.2)
            if bells:
                break
        assert bells and isinstance(app.screen, RecordsScreen)
        assert any(f"{run.short_id} demo: completed" in n.message for n in app._notifications)


async def test_env_diff_from_the_compare_view(workspace_dir, make_app):
    app = make_app(poll_interval=0, gpu_interval=0)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        app.open_compare([Run(Path("results") / r) for r in workspace_dir["em"][:3]])
        await settle(pilot)
        await pilot.press("e")
        await settle(pilot)
        assert isinstance(app.screen, EnvDiffScreen)
        assert (
            app.screen.a.id == workspace_dir["em"][0] and app.screen.b.id == workspace_dir["em"][1]
        )


def table_lines(table) -> list[str]:
    """The Runs table as drawn (its caches included), one string per screen line."""
    return ["".join(s.text for s in table.render_line(y)) for y in range(table.size.height)]


async def test_a_changed_run_repaints_its_row_and_leaves_the_others(workspace_dir, make_app):
    app = make_app(poll_interval=0, gpu_interval=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        screen: RunsScreen = app.screen
        table = screen.query_one("#runs", DataTable)
        before = table_lines(table)
        victim = Path("results") / screen._shown[1]
        state = json.loads((victim / "state.json").read_text())
        state["key_metric"] = {"name": "val_auc", "value": 0.987654}
        write_json_atomic(victim / "state.json", state)
        screen.poll()
        await settle(pilot)
        after = table_lines(table)
        changed = [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b]
        assert len(changed) == 1 and "0.9877" in after[changed[0]]
        assert victim.name[-6:] in after[changed[0]]
        # the same values again change nothing on screen
        screen._refresh_model(({*()}, {victim.name}, {*()}))
        await settle(pilot)
        assert table_lines(table) == after


async def test_the_next_overlay_page_is_drawn_ahead_and_equals_a_fresh_drawing(
    workspace_dir, make_app
):
    from labdeck.tui.widgets.overlay_chart import OverlayChart, _content

    app = make_app(poll_interval=0, gpu_interval=0, monitor_interval=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        em = [Run(Path("results") / r) for r in workspace_dir["em"]]
        OverlayChart._drawn.clear()
        app.open_overlay(em, em[0].id)
        await settle(pilot, 0.3)
        await pilot.press("minus")  # one row of two charts: two pages of the four metrics
        await settle(pilot, 0.3)  # the first page, then the second drawn off screen
        screen: OverlayScreen = app.screen
        per = screen.rows * screen.cols
        assert len(screen.names()) > per
        charts = list(screen.query(OverlayChart))
        following = screen.names()[per : 2 * per]
        keys = [
            c._key(_content(*screen._chart_lines(n)))
            for c, n in zip(charts, following, strict=True)
        ]
        for _ in range(100):  # however loaded the machine: drawn before it is shown
            if all(k in OverlayChart._drawn for k in keys):
                break
            await pilot.pause(0.1)
        assert all(k in OverlayChart._drawn for k in keys)
        await pilot.press("n")  # next page
        await settle(pilot, 0.1)
        assert screen.page == 1
        charts = [c for c in screen.query(OverlayChart) if c.display]
        shown = [c.render().plain for c in charts]
        OverlayChart._drawn.clear()  # what the same charts look like drawn from nothing
        assert [c.render().plain for c in charts] == shown


async def test_home_and_end_go_to_the_first_and_last_run(workspace_dir, make_app) -> None:
    app = make_app(poll_interval=0, gpu_interval=0, monitor_interval=0)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        table = app.screen.query_one("#runs", DataTable)
        table.move_cursor(row=2)
        await pilot.press("end")
        assert table.cursor_row == table.row_count - 1 > 2
        await pilot.press("home")
        assert table.cursor_row == 0


async def test_compare_of_em_variants_names_the_convention_and_shows_values_as_written(
    workspace_dir, make_app
) -> None:
    from labdeck.tui.screens.compare import CompareScreen

    em = sorted(r for r in os.listdir("results") if "_em_" in r)[:2]
    app = make_app(poll_interval=0, gpu_interval=0, monitor_interval=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        app.push_screen(CompareScreen([Run(Path("results") / r) for r in em]))
        await settle(pilot)
        screen = app.screen
        title = str(screen.query_one("#compare-metrics").border_title)
        assert title == "final metrics · em_rate=model-organisms"
        params = screen.query_one("#compare-params", DataTable)
        rows = {
            str(r[0]): [str(c) for c in r[1:]]
            for r in map(params.get_row_at, range(params.row_count))
        }
        assert rows["with_reflection"] == ["false", "true"]  # as in the run's parameters
