"""Grids and groups: expansion, validation, group records in config.json, and the verbs
that take a GROUP (ls, stop, resume, reproduce, compare, export, plot)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from labdeck.backend.cli import main
from labdeck.backend.groups import list_groups
from labdeck.backend.reports import group_styles
from labdeck.backend.runs import list_runs


def records(run) -> list[tuple]:
    if not run.records_path.is_file():
        return []
    lines = run.records_path.read_text().splitlines()
    return [(r["key"], r["value"]) for r in map(json.loads, lines)]


def test_dry_run_lists_every_member_with_overrides_and_estimates(results_dir, capsys) -> None:
    code = main(
        [
            "run",
            "--kind",
            "counter",
            "--set",
            "unit_seconds=0.5",
            "--grid",
            "seed=1,2",
            "--grid",
            "units=3,5",
            "--dry-run",
            "--json",
        ]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["axes"] == {"seed": [1, 2], "units": [3, 5]}
    assert [m["coords"] for m in out["members"]] == [
        {"seed": 1, "units": 3},
        {"seed": 1, "units": 5},
        {"seed": 2, "units": 3},
        {"seed": 2, "units": 5},
    ]
    assert [m["units"] for m in out["members"]] == [3, 5, 3, 5]
    assert out["members"][1]["seconds"] == 2.5
    assert out["members"][3]["overrides"] == {"units": 5, "unit_seconds": 0.5, "seed": 2}
    assert list(results_dir.iterdir()) == []  # nothing ran, nothing was created
    assert main(["run", "--kind", "counter", "--grid", "seed=1,2", "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "grid: 2 runs" in text and "seed=2" in text and "total: 2 runs" in text


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ("nope=1,2", "--grid nope: unknown parameter 'nope'"),
        ("units=3,many", "--grid units: params.units: Input should be a valid integer"),
        ("units=", "--grid units: empty axis"),
        ("units=0,1", "--grid units: params.units: Input should be greater than or equal to 1"),
        ("seed=1,1", "--grid seed: the same value appears twice"),
    ],
)
def test_a_bad_grid_is_one_line_exit_2_and_no_run_directory(
    results_dir, capsys, grid: str, message: str
) -> None:
    assert main(["run", "--kind", "counter", "--grid", grid]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("labdeck: error: ") and message in err, err
    assert len(err.splitlines()) == 1
    assert list(results_dir.iterdir()) == []


def test_a_preset_grid_table_with_a_flag_replacing_one_axis(results_dir, tmp_path, capsys) -> None:
    preset = tmp_path / "fam.toml"
    preset.write_text(
        'kind = "counter"\ntitle = "fam"\n[params]\nunits = 2\n'
        "[grid]\nseed = [1, 2, 3]\ninner = { scale = [1.0, 2.0] }\n"
        '[launcher]\nname = "local"\nconcurrency = 2\n'
    )
    bad = tmp_path / "bad.toml"
    bad.write_text('kind = "counter"\n[grid]\nseed = 3\n')
    assert main(["run", str(bad)]) == 2
    assert "bad.toml: grid.seed: expected a list of values" in capsys.readouterr().err
    assert main(["run", str(preset), "--grid", "seed=7,8", "--quiet"]) == 0
    runs = list_runs(results_dir)
    assert len(runs) == 4
    (group,) = list_groups(results_dir).values()
    assert group.axes == {"seed": [7, 8], "inner.scale": [1.0, 2.0]}
    coords = [group.coords(r) for r in group.members]
    assert coords == [
        {"seed": 7, "inner.scale": 1.0},
        {"seed": 7, "inner.scale": 2.0},
        {"seed": 8, "inner.scale": 1.0},
        {"seed": 8, "inner.scale": 2.0},
    ]
    for i, run in enumerate(group.members):
        cfg = run.config
        assert cfg["group"]["index"] == i and cfg["group"]["size"] == 4
        assert cfg["params"]["seed"] == coords[i]["seed"] and cfg["params"]["units"] == 2
        assert cfg["launcher"]["name"] == "local" and cfg["launcher"]["concurrency"] == 2
        assert f"--set seed={coords[i]['seed']}" in cfg["commands"]["run_explicit"]
        assert run.status() == "completed" and len(records(run)) == 2
    # members are normal runs: the same parameters run alone give the same records
    assert main(["run", "--kind", "counter", "--set", "units=2", "--set", "seed=8", "--quiet"]) == 0
    alone = next(r for r in list_runs(results_dir) if "group" not in r.config)
    assert records(alone) == records(group.members[2])


def test_ls_folds_a_group_with_status_counts_progress_and_best(results_dir, lab) -> None:
    assert (
        main(["run", "--kind", "counter", "--set", "units=3", "--grid", "seed=1,2,3", "--quiet"])
        == 0
    )
    (group,) = list_groups(results_dir).values()
    best = max(group.members, key=lambda r: r.state()["key_metric"]["value"])
    p = lab("ls", "--fold", env={"COLUMNS": "200"}, check=True)
    line = next(ln for ln in p.stdout.splitlines() if group.id in ln)
    assert "3 completed" in line and "3/3 runs" in line and f"({best.short_id})" in line
    assert not any(m.short_id in p.stdout.replace(f"({best.short_id})", "") for m in group.members)
    p = lab("ls", env={"COLUMNS": "200"}, check=True)
    assert all(m.short_id in p.stdout for m in group.members)


def test_stop_and_resume_a_group_through_the_detached_queue(results_dir, lab) -> None:
    """A detached queue (concurrency 1): members wait `queued`; stop GROUP takes them out;
    resume GROUP finishes them with the records an uninterrupted run has."""
    p = lab(
        "run", "--kind", "counter", "--set", "units=30", "--set", "unit_seconds=0.05",
        "--grid", "seed=1,2,3", "--launch", "concurrency=1", "--detach", check=True,
    )  # fmt: skip
    gid = p.stdout.split()[-1]
    (group,) = list_groups(results_dir).values()
    assert group.id == gid
    deadline = time.time() + 30
    while time.time() < deadline and "running" not in group.statuses():
        time.sleep(0.1)
    counts = group.statuses()
    assert counts["running"] == 1 and counts["queued"] == 2, counts
    lab("stop", gid, "--wait", "20", check=True)
    assert set(group.statuses()) == {"interrupted"}, group.statuses()
    assert len(records(group.members[0])) < 30 and records(group.members[2]) == []
    lab("resume", gid, "--quiet", check=True)  # a new queue, in the background
    deadline = time.time() + 60
    while time.time() < deadline and set(group.statuses()) != {"completed"}:
        time.sleep(0.1)
    assert set(group.statuses()) == {"completed"}
    assert (
        main(["run", "--kind", "counter", "--set", "units=30", "--set", "seed=1", "--quiet"]) == 0
    )
    alone = next(r for r in list_runs(results_dir) if "group" not in r.config)
    assert records(alone) == records(group.members[0])


def test_reproduce_compare_export_and_plot_take_a_group(results_dir, lab, capsys) -> None:
    assert main(["run", "--kind", "counter", "--set", "units=3", "--grid", "inner.scale=1.0,2.0", "--launch", "concurrency=2", "--quiet"]) == 0  # fmt: skip
    (group,) = list_groups(results_dir).values()
    assert main(["reproduce", group.id, "--quiet"]) == 0
    assert list_groups(results_dir)[group.id].members == group.members  # repros stay outside
    capsys.readouterr()
    assert main(["compare", group.id]) == 0
    assert capsys.readouterr().out.count("PASS") == 2
    assert main(["export", group.id, "--format", "csv"]) == 0
    paths = capsys.readouterr().out.split()
    assert len(paths) == 3 and all(Path(x).is_file() for x in paths)
    import pandas as pd

    # the last is the whole grid in one table: each row with its run and coordinates
    table = pd.read_csv(paths[-1])
    members = [pd.read_csv(x) for x in paths[:2]]
    assert len(table) == sum(len(m) for m in members) == 6
    assert list(table.columns[:2]) == ["run_id", "grid.inner.scale"]
    assert sorted(set(table["grid.inner.scale"])) == [1.0, 2.0]
    assert set(table["run_id"]) == {r.id for r in group.members}
    assert main(["plot", group.id, "--metric", "value", "--color", "inner.scale"]) == 0
    png = Path(capsys.readouterr().out.strip())
    assert png.is_file() and png.read_bytes()[:4] == b"\x89PNG"
    bad = lab("plot", group.id, "--color", "nope")  # the real command line: one line, exit 2
    assert bad.returncode == 2 and "--color nope: not a grid axis" in bad.stderr


def test_group_styles_colour_by_one_axis_and_line_style_by_another() -> None:
    coords = [
        {"persona": p, "with_reflection": r}
        for p in ("baseline", "goodness")
        for r in (False, True)
    ]
    color, style, styles = group_styles(coords, None, None)
    assert (color, style) == ("persona", "with_reflection")
    assert styles[0]["color"] == styles[1]["color"] != styles[2]["color"]
    assert styles[0]["linestyle"] == styles[2]["linestyle"] != styles[1]["linestyle"]
    color, style, styles = group_styles(coords, "with_reflection", None)
    assert (color, style) == ("with_reflection", "persona")
    assert styles[0]["color"] != styles[1]["color"] and styles[0]["color"] == styles[2]["color"]


def test_a_bad_launcher_is_one_line_exit_2_and_no_run_directory(results_dir, capsys, monkeypatch):
    assert main(["run", "--kind", "counter", "--launcher", "moon"]) == 2
    assert "unknown launcher 'moon'; expected one of: local, slurm" in capsys.readouterr().err
    assert main(["run", "--kind", "counter", "--launch", "concurrency=0"]) == 2
    assert (
        "launcher.concurrency: Input should be greater than or equal to 1"
        in capsys.readouterr().err
    )
    monkeypatch.setenv("PATH", "/nonexistent")  # no sbatch here
    assert main(["run", "--kind", "counter", "--grid", "seed=1,2", "--launcher", "slurm"]) == 2
    assert "launcher slurm: `sbatch` not found" in capsys.readouterr().err
    assert list(results_dir.iterdir()) == []


def test_member_titles_keep_their_coordinates_when_the_base_is_long() -> None:
    """Folder names are capped; a long base title is what gets cut, never the values
    that tell two members apart (a boolean axis used to vanish at the cap)."""
    from labdeck.backend.grid import Member
    from labdeck.backend.runs import TITLE_MAX

    base = "em-demo-persona-reflection-with-a-long-title"
    coords = [
        {"persona": p, "with_reflection": r}
        for p in ("baseline", "goodness")
        for r in (False, True)
    ]
    titles = [Member(i, c, None).title(base) for i, c in enumerate(coords)]
    assert len(set(titles)) == 4 and all(len(t) <= TITLE_MAX for t in titles)
    assert titles[0].endswith("persona-baseline_with_reflection-false")
    assert titles[3].startswith("em-demo") and titles[3].endswith("-true")
    # many axes: the names go, the values stay
    many = Member(0, {"model.name": "x" * 20, "learning_rate": 0.001, "seed": 7}, None).title(base)
    assert many.endswith("_0.001_7") and len(many) <= TITLE_MAX


def test_launcher_options_as_grid_axes(results_dir, capsys) -> None:
    """`--grid launch.X=...` varies a launcher option per member; a bad one is refused
    before any run directory exists."""
    bad = ["run", "--kind", "counter", "--grid", "launch.gpus_per_node=1,2", "--quiet"]
    assert main(bad) == 2
    err = capsys.readouterr().err
    assert "--grid launch.gpus_per_node=1" in err and "gpus_per_node" in err
    assert list_runs(results_dir) == []
    argv = ["run", "--kind", "counter", "--set", "units=2", "--grid", "launch.concurrency=1,2"]
    assert main([*argv, "--grid", "seed=1,2", "--quiet"]) == 0
    (group,) = list_groups(results_dir).values()
    assert group.statuses() == {"completed": 4}
    got = [(group.coords(r), r.config["launcher"]["concurrency"]) for r in group.members]
    assert [c for _, c in got] == [1, 1, 2, 2]
    assert all(c["launch.concurrency"] == n for c, n in got)
    # resumed, each member goes back with its own options: one queue per resource request
    for r in group.members:
        r.write_state(status="interrupted")
    assert main(["resume", group.id, "--quiet"]) == 0
    drivers = {}
    for r in group.members:
        drivers.setdefault(r.config["launcher"]["concurrency"], set()).add(
            r.state()["queue"]["driver"]
        )
    assert all(len(d) == 1 for d in drivers.values()) and drivers[1] != drivers[2], drivers
    deadline = time.time() + 60
    while time.time() < deadline and group.statuses() != {"completed": 4}:
        time.sleep(0.1)
    assert group.statuses() == {"completed": 4}
