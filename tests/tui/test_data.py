"""RunView and RunList: what Monitor, Compare and the Runs table are drawn from."""

from __future__ import annotations

import json
import os
from pathlib import Path

from fixture_runs import DEAD_PID, T0, FixedWriter, kt_run

from labdeck.backend.jsonio import write_json_atomic
from labdeck.backend.runs import create_run_dir
from labdeck.tui.data import RunView, Series
from labdeck.tui.runlist import RunList


def test_completed_run_folds_every_section(fixture_dir):
    v = RunView(Path("results") / fixture_dir["original"])
    changed = v.poll()
    assert {"memory", "batch", "phases", "metrics", "log", "state"} <= changed
    assert v.status == "completed"
    assert list(v.phases) == ["load", "generate", "perplexity"]
    assert v.phases["perplexity"].done == 8 and v.phases["perplexity"].fraction == 1.0
    assert v.devices["cuda:0"].source == "nvml" and len(v.devices["cuda:0"].history) == 60
    assert v.batch_counts == {"start": 1, "grow": 2, "oom": 1, "pause": 1, "shrink": 1}
    rows = v.table_rows()
    assert len(rows) == 8  # 4 levels x 2 groups
    assert rows[0][0] == ("level", "0", "attn") and rows[-1][0] == ("level", "0.2", "mlp")
    assert v.table_columns == ["perplexity", "refusal_rate"]
    assert v.poll() == set()  # nothing new: nothing changed


def test_corrupt_line_is_named_not_fatal(fixture_dir):
    v = RunView(Path("results") / fixture_dir["running"])
    v.poll()
    assert v.trajectory_entries == 5
    assert "trajectory:loss_shares.alignment" in v.series_names()
    line = v.problem_line()
    assert line and "events.jsonl" in line and "1 corrupt" in line


def test_follows_appends_and_torn_lines(tmp_path):
    run = create_run_dir(tmp_path, "20260101_000000_kt_x_000001", json.dumps({"kind": "kt"}))
    w = FixedWriter(run.events_path, T0)
    w.at(T0, "phase", name="train", total=10)
    v = RunView(run)
    v.poll()
    assert v.phases["train"].done == 0
    for i in range(1, 5):
        w.at(T0 + i, "progress", phase="train", done=i, total=10)
    with open(run.events_path, "a") as fh:  # a writer killed mid-line
        fh.write('{"t": 1, "seq": 99, "type": "progr')
    assert v.poll() == {"phases"}
    ph = v.phases["train"]
    assert ph.done == 4 and ph.rate == 1.0 and ph.eta == 6.0
    assert v.bad_lines == 0  # the torn line is not corrupt, just unfinished


def test_series_memory_is_bounded_and_keeps_the_latest():
    s = Series(cap=100)
    for i in range(100_000):
        s.add(float(i), float(i))
    assert len(s) <= 100
    xs, _ = s.points()
    assert xs[0] == 0.0 and xs[-1] == 99_999.0


def test_huge_file_reads_tail_and_keeps_rare_events(tmp_path):
    run = create_run_dir(tmp_path, "20260101_000000_kt_big_000002", json.dumps({"kind": "kt"}))
    w = FixedWriter(run.events_path, T0)
    w.at(T0, "phase", name="train", total=40_000)
    for i in range(40_000):
        w.at(T0 + i, "progress", phase="train", done=i + 1, total=40_000)
        if i % 1000 == 0:
            w.at(T0 + i, "metric", name="val_auc", value=i / 40_000, epoch=i // 1000)
            w.at(
                T0 + i,
                "memory",
                devices=[{"device": "cpu", "used": i, "total": 10**6, "source": "host"}],
            )
    v = RunView(run, tail_bytes=200_000)
    v.poll()
    assert v.skimmed_bytes > 0
    assert v.phases["train"].done == 40_000 and v.phases["train"].total == 40_000
    # every per-epoch metric survives, even those far before the tail
    assert [r[0][1] for r in v.table_rows()] == [str(e) for e in range(40)]
    assert v.events_seen < 20_000


def test_runlist_statuses_and_change_detection(fixture_dir):
    # a fixed probe: the live runner's pid is this test process, whose CPU and memory move
    rl = RunList(Path("results"), process_probe=lambda pid: (12.0, 300 * 1024**2))
    added, changed, removed = rl.refresh()
    assert len(added) == 6 and not changed and not removed
    status = {r.id: r.status for r in rl.ordered()}
    assert status[fixture_dir["running"]] == "running"
    assert status[fixture_dir["crashed"]] == "crashed"
    assert status[fixture_dir["failed"]] == "failed"
    assert rl.rows[fixture_dir["repro"]].reproduction_of == fixture_dir["original"]
    assert rl.rows[fixture_dir["original"]].key_value == 12.3
    assert rl.refresh() == (set(), set(), set())
    # a runner that dies shows as crashed on the next refresh
    run = rl.rows[fixture_dir["running"]].run
    st = run.state()
    st["pid"] = DEAD_PID
    write_json_atomic(run.path / "state.json", st)
    os.utime(run.path / "state.json", ns=(1, 1))
    _, changed, _ = rl.refresh()
    assert changed == {fixture_dir["running"]} and rl.rows[run.id].status == "crashed"


def test_runlist_survives_broken_config(fixture_dir):
    bad = Path("results") / "20260101_120000_kt_bad_999999"
    kt_run(Path("results"), bad.name, "completed", 1, None, T0)
    (bad / "config.json").write_text("{not json")
    rl = RunList(Path("results"))
    rl.refresh()
    row = rl.rows[bad.name]
    assert row.error and "config.json" in row.error


def test_dashboard_never_imports_model_code():
    """The dashboard validates against kinds' config.py only; torch stays out of its process."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import labdeck.tui.app, labdeck.tui.screens.launch, labdeck.tui.screens.monitor, labdeck.tui.screens.compare, labdeck.tui.screens.help\n"
        "from labdeck.backend.kinds import kind_names\n"
        "from labdeck.backend.presets import schema_rows\n"
        "[schema_rows(k) for k in kind_names()]\n"
        "bad = [m for m in ('torch', 'transformers') if m in sys.modules]\n"
        "bad += [m for m in sys.modules if m.startswith('labdeck.backend.kinds.') and m.endswith('.experiment')]\n"
        "assert not bad, bad\n"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
