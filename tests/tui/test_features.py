"""What the dashboard shows and does beyond drawing: durations that skip stopped time,
early stops, labelled memory, compare's pending and labels, sorting, tags and notes,
log filter, x axes, and column/label choices for narrow terminals."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import DataTable

from labdeck.backend.display import main_phase, progress_text
from labdeck.backend.jsonio import write_json_atomic
from labdeck.backend.notes import read_notes
from labdeck.backend.runs import ARTIFACTS, SUMMARY, Run
from labdeck.tui.data import ReadBatch, RunView
from labdeck.tui.plotting import abbreviate, curve_of
from labdeck.tui.runlist import RunRow
from labdeck.tui.screens.compare import CompareScreen
from labdeck.tui.screens.monitor import MonitorScreen
from labdeck.tui.screens.runs import RunsScreen, fit_columns


def test_elapsed_time_skips_the_time_a_run_sat_stopped(tmp_path):
    row = RunRow(Run(tmp_path), status="running", started=1000.0)
    # ran 100 s in earlier attempts, stopped for a day, resumed 50 s ago
    row.active_before, row.attempt_started = 100.0, 1000.0 + 86_400
    assert row.duration(1000.0 + 86_450) == 150.0
    row.status, row.heartbeat = "crashed", 1000.0 + 86_420
    assert row.duration(1000.0 + 99_999) == 120.0  # counts up to its last heartbeat


def test_early_stop_is_shown_with_its_reason_and_the_main_phase():
    state = {
        "phase": "eval",
        "done": 1,
        "total": 1,
        "phases": {
            "train": {"done": 34, "total": 80, "stopped": "early stop: no better val AUC"},
            "eval": {"done": 1, "total": 1},
        },
    }
    assert main_phase(state)[:3] == ("train", 34, 80)
    assert progress_text(state) == "train 34/80 stopped early"
    view = RunView(Path("/nonexistent"))
    view.apply(
        ReadBatch(
            [
                {"t": 1.0, "seq": 0, "type": "phase", "name": "train", "total": 80},
                {"t": 2.0, "seq": 1, "type": "progress", "phase": "train", "done": 34},
                {
                    "t": 3.0,
                    "seq": 2,
                    "type": "phase_end",
                    "phase": "train",
                    "done": 34,
                    "total": 80,
                    "reason": "early stop: no better val AUC",
                },
            ],
            None,
            None,
            0,
        )
    )
    assert view.phases["train"].stopped.startswith("early stop") and view.phases["train"].eta == 0


def test_narrow_columns_keep_the_essentials_and_distinct_labels():
    for width in (60, 80, 120, 200):
        keys = [c.key for c, _, _ in fit_columns(width)]
        assert {"id", "status", "progress"} <= set(keys)
        assert sum(w + 2 for _, w, _ in fit_columns(width)) <= width - 2
        headers = [h for _, _, h in fit_columns(width)]
        assert len(set(headers)) == len(headers)
    assert len(fit_columns(200)) > len(fit_columns(80)) > len(fit_columns(60)) - 1
    names = [f"train_loss.component_{c}" for c in "abcdefghij"]
    labels = abbreviate(names, 12)
    assert len(set(labels.values())) == 10 and all(len(v) <= 12 for v in labels.values())


def test_x_axis_choices(fixture_dir):
    view = RunView(Path("results") / fixture_dir["interrupted"])
    view.poll()
    native, axis = curve_of(view, "train_loss", "loss", "native", 0.0)
    assert axis == "step" and native.xs[:2] == [0.0, 1.0]
    wall, axis = curve_of(view, "train_loss", "loss", "wall", 0.0)
    assert axis == "wall time (s)" and wall.xs[0] == 10.0
    epoch, axis = curve_of(view, "train_loss", "loss", "epoch", 0.0)
    assert axis == "epoch" and 0.0 <= epoch.xs[0] < 1.0 and epoch.xs[-1] <= 7.0
    smooth, _ = curve_of(view, "train_loss", "loss", "native", 0.9)
    assert smooth.ys[0] == native.ys[0] and smooth.ys[-1] != native.ys[-1]


async def test_sort_tags_note_and_labelled_memory(fixture_dir, make_app):
    app = make_app(poll_interval=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.3)
        screen = app.screen
        assert isinstance(screen, RunsScreen)
        table = screen.query_one("#runs", DataTable)
        first = [str(table.get_row_at(i)[1]) for i in range(table.row_count)]
        await pilot.press("o")  # sort by status
        await pilot.pause()
        assert screen.sort_key == "status"
        by_status = [str(table.get_row_at(i)[1]) for i in range(table.row_count)]
        assert by_status != first and sorted(by_status) == sorted(first)
        # tags and a note on the selected run, stored in its directory
        rid = screen._current_id()
        await pilot.press("t", *"baseline v2", "enter")
        await pilot.pause(0.2)
        await pilot.press("n", *"for the paper", "enter")
        await pilot.pause(0.2)
        notes = read_notes(Run(Path("results") / rid))
        assert notes.tags == ["baseline", "v2"] and notes.note == "for the paper"
        await pilot.press("slash", *"baseline", "enter")
        await pilot.pause(0.2)
        assert table.row_count == 1
        # Monitor: every memory number says what it is; the log filter keeps matches
        app.open_monitor(Run(Path("results") / fixture_dir["interrupted"]))
        await pilot.pause(0.6)
        mon = app.screen
        assert isinstance(mon, MonitorScreen)
        memory = str(mon.query_one("#memory-panel").render())
        assert "of 24.0 GiB used" in memory and "GPU util 60%" in memory
        await pilot.press("slash", *"epoch 3")
        await pilot.pause(0.2)
        assert mon.query_one("#log").lines == ["09:53:00 epoch 3: loss 0.6807 val_auc 0.7580"]


async def test_compare_with_an_unfinished_run_is_pending_and_labels_differ(fixture_dir, make_app):
    app = make_app(poll_interval=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.2)
        runs = [Run(Path("results") / fixture_dir[k]) for k in ("interrupted", "running")]
        for run in runs:  # a finished-looking summary on both; one runner is still alive
            write_json_atomic(
                run.path / ARTIFACTS / SUMMARY, {"final_metrics": {"Best Val AUC": 0.8}}
            )
        app.open_compare(runs)
        await pilot.pause(0.5)
        screen = app.screen
        assert isinstance(screen, CompareScreen)
        table = screen.query_one("#compare-metrics", DataTable)
        verdicts = [str(table.get_row_at(i)[1]) for i in range(table.row_count)]
        assert verdicts == ["pending"]
        pair = [Run(Path("results") / fixture_dir[k]) for k in ("original", "repro")]
        labels = CompareScreen(pair)._labels()
        assert labels == ["A 123456", "B 123456r"]  # a reproduction's own short id


def test_runner_cpu_and_rss_come_from_the_process_itself(tmp_path):
    import os

    from labdeck.tui.runlist import RunList

    rl = RunList(tmp_path)
    cpu, rss = rl._psutil_probe(os.getpid())
    assert cpu >= 0.0 and rss > 10 * 1024**2
    assert rl._psutil_probe(4_194_000) is None  # a pid that cannot exist


def test_declared_table_views_keep_their_events():
    from labdeck.backend.kinds import kind_config
    from labdeck.backend.kinds.spec import Table, views
    from labdeck.tui.data import field_of

    tables = [v for v in views(kind_config("kt")) if isinstance(v, Table)]
    assert tables and tables[0].event == "checkpoint"
    view = RunView(Path("/nonexistent"))
    view.keep_events([tables[0].event])
    ev = {"t": 1.0, "seq": 0, "type": "checkpoint", "step": 3, "metrics": {"val_auc": 0.7}}
    changed = view.apply(ReadBatch([ev], None, None, 0))
    assert "metrics" in changed and list(view.kept["checkpoint"]) == [ev]
    assert field_of(ev, "metrics.val_auc") == 0.7 and field_of(ev, "metrics.nope") is None


def test_checkpoint_labels_show_as_themselves_and_detail_stays_out():
    view = RunView(Path("/nonexistent"))
    metrics = {"em_rate": "betley", "misaligned_rate": 0.25, "per_question": {"q1": {"n": 2}}}
    ev = {"t": 1.0, "seq": 0, "type": "checkpoint", "step": 3, "metrics": metrics}
    view.apply(ReadBatch([ev], None, None, 0))
    ((at, values),) = view.table_rows()
    assert at == ("checkpoint", "3", "")
    assert values == {"em_rate": "betley", "misaligned_rate": 0.25}


async def test_keys_typed_right_after_an_opener_go_into_the_box(fixture_dir, make_app):
    """A burst (a fast typist, a paste) after `/` or `t` must not fire the screen's keys:
    `s` would stop a run, `r` resume one."""
    from textual import events

    app = make_app(poll_interval=0)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        for ch in "/resume":
            app.post_message(events.Key("slash" if ch == "/" else ch, ch))
        await pilot.pause(0.3)
        assert app.screen.query_one("#search").value == "resume"
        # enter leaves the box at once: the next key is a key again, not more text
        for key, ch in (("enter", "\r"), ("x", "x")):
            app.post_message(events.Key(key, ch))
        await pilot.pause(0.3)
        assert app.screen.query_one("#search").value == "resume"
        await pilot.press("escape")
        for ch in "tstop":
            app.post_message(events.Key(ch, ch))
        await pilot.pause(0.3)
        assert app.screen.query_one("#prompt-input").value == "stop"


async def test_a_narrow_monitor_names_the_original_by_its_short_id(fixture_dir, make_app):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        app.open_monitor(Run(Path("results") / fixture_dir["repro"]))
        await pilot.pause(0.6)
        head = str(app.screen.query_one("#monitor-head").render())
        assert "reproduces 123456" in head and fixture_dir["original"] not in head
