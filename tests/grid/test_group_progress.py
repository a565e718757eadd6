"""A group's progress counts its runs, those still to start included; `compare` counts
the data-parallel world as a parameter."""

from __future__ import annotations

import json

from labdeck.backend.cli import main
from labdeck.backend.groups import list_groups
from labdeck.backend.runs import list_runs


def test_members_not_started_count_in_the_group_total(results_dir) -> None:
    argv = ["run", "--kind", "counter", "--set", "units=4", "--grid", "seed=1,2,3", "--quiet"]
    assert main(argv) == 0
    (group,) = list_groups(results_dir).values()
    assert group.progress() == (3, 3)
    for r in group.members[1:]:  # as just created: queued, nothing reported yet
        (r.path / "state.json").write_text(json.dumps({"status": "queued", "created": 1.0}))
    assert group.progress() == (1, 3)
    group.members[1].write_state(status="running", done=1, total=4)
    assert group.progress() == (1, 3)


def test_compare_shows_a_different_process_count(results_dir, capsys) -> None:
    for title in ("one", "two"):
        assert (
            main(["run", "--kind", "counter", "--set", "units=3", "--title", title, "--quiet"]) == 0
        )
    runs = {r.title: r for r in list_runs(results_dir)}
    config = json.loads((runs["two"].path / "config.json").read_text())
    config["launcher"]["processes"] = 2  # as `--launch processes=2` records it
    (runs["two"].path / "config.json").write_text(json.dumps(config))
    capsys.readouterr()
    main(["compare", runs["one"].id, runs["two"].id, "--json"])
    out = json.loads(capsys.readouterr().out)
    params = {p["key"]: p for p in out["params"]}
    assert "launcher.processes" in params, out["params"]
    row = params["launcher.processes"]
    assert (row["a"], row["b"]) == (1, 2), row
