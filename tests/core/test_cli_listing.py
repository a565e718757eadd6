"""`ls`, `show`, `presets` and verb names as a user types them: short ids that never
collide after a reproduction, unknown statuses and verbs refused naming the choices,
piped tables without trailing padding, parameter columns and conditions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from labdeck.backend.cli import main
from labdeck.backend.errors import UserError
from labdeck.backend.jsonio import write_json_atomic
from labdeck.backend.runs import Run, create_run_dir, resolve_run, short_id

ORIGINAL = "20260101_090000_kt_demo_734429"


def _run(results: Path, run_id: str, params: dict, state: dict, kind: str = "kt") -> Run:
    cfg = {"run_id": run_id, "kind": kind, "title": "demo", "params": params, "md5": "0" * 32}
    run = create_run_dir(results, run_id, json.dumps(cfg))
    write_json_atomic(run.path / "state.json", {"started": 1767258000.0, **state})
    return run


@pytest.fixture
def pair(results_dir: Path) -> tuple[Run, Run, Run]:
    done = {"status": "completed", "ended": 1767258300.0}
    original = _run(results_dir, ORIGINAL, {"lr": 1e-3, "seed": 1}, done)
    repro = _run(
        results_dir,
        ORIGINAL + "_repro",
        {"lr": 1e-3, "seed": 1},
        {"status": "interrupted", "reproduction_of": ORIGINAL},
    )
    second = _run(
        results_dir,
        "20260101_090500_kt_demo_734429_repro2",
        {"lr": 1e-2, "seed": 2},
        {"status": "failed", "reproduction_of": ORIGINAL},
    )
    return original, repro, second


def test_every_run_has_its_own_short_id_after_reproduce(pair, results_dir, capsys):
    original, repro, second = pair
    assert [r.short_id for r in pair] == ["734429", "734429r", "734429r2"]
    assert short_id("20260101_090000_kt_demo_734429_repro") == "734429r"
    # the CLI resolves each short id to its own run, never to the original
    assert resolve_run(results_dir, "734429").id == original.id
    assert resolve_run(results_dir, "734429r").id == repro.id
    assert resolve_run(results_dir, "734429r2").id == second.id
    assert main(["ls", "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    ids = [e["short_id"] for e in entries]
    assert sorted(ids) == ["734429", "734429r", "734429r2"] and len(set(ids)) == 3
    # `stop 734429r` acts on the reproduction (a stop request lands in its folder)
    assert main(["stop", "734429r"]) == 0
    out = capsys.readouterr().out
    assert repro.id in out and original.id not in out.replace(repro.id, "")


def test_ls_unknown_status_is_exit_2_naming_the_choices(pair, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["ls", "--status", "runing"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "runing" in err and "running" in err and "completed" in err


def test_a_mistyped_verb_does_not_list_internal_verbs(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["lss"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "'ls'" in err and "_queue" not in err
    from labdeck.backend.cli import build_parser

    assert build_parser().parse_args(["_queue", "x"]).runs == ["x"]


def _piped(*argv: str, cwd: Path | None = None) -> str:
    return subprocess.run(
        [sys.executable, "-m", "labdeck.backend.cli", *argv],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "80", "TZ": "UTC"},
        timeout=120,
        check=True,
        cwd=cwd,
    ).stdout


def test_piped_tables_have_no_trailing_padding(pair):
    root = Path(__file__).resolve().parents[2]
    for argv in (["presets", "--dir", str(root / "presets")], ["ls"]):
        out = _piped(*argv)
        lines = out.splitlines()
        assert len(lines) > 2, out
        assert all(line == line.rstrip() for line in lines), argv
        assert len({len(line) for line in lines}) > 1  # not all padded to the widest


def test_show_keeps_a_table_title_on_one_line():
    from rich.console import Console

    from labdeck.backend import display

    console = Console(width=80, force_terminal=True, record=True)
    original = display.piped
    display.piped = lambda: False
    try:
        console.print(
            display.table("overrides (vs kind defaults)", ["parameter", "value"], [["lr", "1"]])
        )
    finally:
        display.piped = original
    text = console.export_text()
    assert "overrides (vs kind defaults)" in text


def test_help_screen_shows_key_caps_not_key_names():
    from labdeck.tui.screens.help import _key_label

    assert _key_label("equals_sign") == "="
    assert _key_label("question_mark,f1") == "? / f1"
    assert "equals_sign" not in _key_label("equals_sign,plus")


def test_ls_columns_show_the_parameters_that_differ(pair, capsys):
    assert main(["ls", "--columns", "auto", "--json"]) == 0
    entries = {e["short_id"]: e for e in json.loads(capsys.readouterr().out)}
    assert entries["734429r2"]["params"] == {"lr": 0.01, "seed": 2}
    assert entries["734429"]["params"] == {"lr": 0.001, "seed": 1}
    assert main(["ls", "--columns=-seed"]) == 0
    out = capsys.readouterr().out
    assert "lr" in out.splitlines()[0] and "seed" not in out.splitlines()[0]
    assert main(["ls", "--where", "lr>5e-3", "--json"]) == 0
    assert [e["short_id"] for e in json.loads(capsys.readouterr().out)] == ["734429r2"]
    assert main(["ls", "--columns", "nope"]) == 2
    assert "nope" in capsys.readouterr().err
    assert main(["ls", "--where", "lr>abc"]) == 2


def test_differing_params_and_conditions_on_hand_made_configs():
    from labdeck.backend.paramcols import ParamFilter, choose_columns, differing_params

    runs = [
        {"lr": 1e-3, "seed": 1, "model": "a", "levels": [0, 1]},
        {"lr": 1e-3, "seed": 2, "model": "a", "levels": [0, 1]},
        {"lr": 1e-2, "seed": 1, "model": "a", "levels": [0, 1], "extra": True},
    ]
    assert differing_params(runs) == ["lr", "seed"]  # `extra`: one run only
    assert differing_params(runs[:1]) == []
    assert choose_columns(["lr", "seed"], "+model,-seed", ["lr", "seed", "model"]) == [
        "lr",
        "model",
    ]
    assert choose_columns(["lr", "seed"], "model", ["lr", "seed", "model"]) == ["model"]
    with pytest.raises(UserError, match="nope"):
        choose_columns([], "nope", ["lr"])
    assert [ParamFilter.parse("lr>1e-3")(r) for r in runs] == [False, False, True]
    assert [ParamFilter.parse("seed=1")(r) for r in runs] == [True, False, True]
    assert [ParamFilter.parse("model!=a")(r) for r in runs] == [False, False, False]
    assert ParamFilter.parse("levels=[0,1]")(runs[0])
    assert not ParamFilter.parse("absent=1")(runs[0])
    with pytest.raises(UserError, match="needs a number"):
        ParamFilter.parse("model>a")


def test_compare_env_shows_packages_commit_dirty_and_device(results_dir, capsys):
    def env(torch: str, dirty: bool, device: str) -> dict:
        return {
            "python": "3.11.7",
            "torch": torch,
            "transformers": "5.0.0",
            "labdeck": "0.1.0",
            "labdeck_source": {"commit": "abcdef1234567890", "dirty": dirty},
            "device": device,
        }

    a = create_run_dir(
        results_dir,
        ORIGINAL,
        json.dumps(
            {"run_id": ORIGINAL, "kind": "kt", "params": {}, "env": env("2.5.1", False, "cpu")}
        ),
    )
    b_id = ORIGINAL + "_repro"
    create_run_dir(
        results_dir,
        b_id,
        json.dumps(
            {"run_id": b_id, "kind": "kt", "params": {}, "env": env("2.6.0", True, "cuda:0: L4")}
        ),
    )
    assert main(["compare", a.id, "734429r", "--env", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)["env"]}
    assert (
        rows["torch"]["a"] == "2.5.1" and rows["torch"]["b"] == "2.6.0" and rows["torch"]["differs"]
    )
    assert rows["dirty"]["a"] == "no" and rows["dirty"]["b"] == "yes"
    assert rows["commit"]["a"] == "abcdef123456" and not rows["commit"]["differs"]
    assert not rows["transformers"]["differs"] and rows["device"]["differs"]
    assert main(["compare", a.id, "734429r", "--env"]) == 0
    out = capsys.readouterr().out
    assert "differs: dirty, torch, device" in out


def test_show_names_the_counting_method_and_keeps_event_lines_readable(
    results_dir, capsys, monkeypatch
):
    run = _run(
        results_dir,
        "20260101_100000_em_demo_515151",
        {"em_rate": "betley"},
        {"status": "completed", "ended": 1767258300.0},
        kind="em",
    )
    (run.path / "artifacts").mkdir(exist_ok=True)
    write_json_atomic(
        run.path / "artifacts" / "summary.json", {"final_metrics": {"misaligned_rate": 0.25}}
    )
    per_question = {f"q{i}": {"n": 2, "misaligned_rate": 0.5} for i in range(40)}
    warning = "no misalignment direction: " + "not enough misaligned answers " * 8
    events = [
        {"t": 1767258100.0, "seq": 1, "type": "checkpoint", "metrics": per_question},
        {"t": 1767258200.0, "seq": 2, "type": "log", "level": "warning", "message": warning},
    ]
    run.events_path.write_text("".join(json.dumps(e) + "\n" for e in events))
    assert main(["show", run.short_id]) == 0  # piped: every character, for grep and awk
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("final metrics (em_rate=betley)") for line in lines)
    (checkpoint,) = [x for x in lines if " checkpoint " in x]
    assert '"q39"' in checkpoint and "…" not in checkpoint
    assert "recent events" in lines  # a title is not centred over the widest row

    from labdeck.backend import display

    monkeypatch.setattr(display, "piped", lambda: False)  # on a terminal 100 wide
    monkeypatch.setattr(display.console, "_width", 100)
    assert main(["show", run.short_id]) == 0
    out = capsys.readouterr().out
    assert "final metrics (em_rate=betley)" in out
    assert '"q39"' not in out and "…" in out  # a checkpoint's detail is cut …
    assert " ".join(warning.split()) in " ".join(out.split())  # … a message is not


def test_params_says_types_in_words_and_json_keeps_the_schema(capsys):
    assert main(["params", "em"]) == 0
    out = capsys.readouterr().out
    assert "one of auto, float32, bfloat16, float16" in out and "Literal[" not in out
    assert "0 to 1024" in out  # cpu_threads' bounds, as the launch form says them
    assert main(["params", "em", "--json"]) == 0
    rows = {r["parameter"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["dtype"]["type"].startswith("Literal[") and rows["cpu_threads"]["bounds"]


def test_compare_says_how_each_side_counted(results_dir, capsys):
    done = {"status": "completed", "ended": 1767258300.0}
    runs = [
        _run(results_dir, f"20260101_10000{i}_em_demo_52525{i}", {"em_rate": rate}, done, "em")
        for i, rate in enumerate(("betley", "model-organisms"))
    ]
    for r in runs:
        (r.path / "artifacts").mkdir(exist_ok=True)
        write_json_atomic(r.path / "artifacts" / "summary.json", {"final_metrics": {"m": 0.25}})
    main(["compare", runs[0].short_id, runs[1].short_id])
    assert "counted:  em_rate=betley/model-organisms" in capsys.readouterr().out
    unknown = _run(results_dir, "20260101_110000_gone_demo_535353", {}, done, "gone")
    assert main(["show", unknown.short_id]) == 0  # a kind this version lacks: no caption
