"""Progress says what a run is doing now (its current phase and that phase's counts, with
the time left), how a finished run ended, and how many of a group's runs are done."""

from __future__ import annotations

import json
import time
from pathlib import Path

from labdeck.backend.cli import main
from labdeck.backend.display import PlainProgress, main_phase, progress_text
from labdeck.backend.groups import list_groups
from labdeck.backend.phase_clock import PhaseClock
from labdeck.backend.runs import resolve_run


def test_a_feedback_run_judging_shows_evaluate_not_the_finished_process_phase() -> None:
    state = {
        "status": "running",
        "phase": "evaluate",
        "done": 3,
        "total": 10,
        "phases": {"process": {"done": 10, "total": 10}, "evaluate": {"done": 3, "total": 10}},
    }
    assert progress_text(state) == "evaluate 3/10"


def test_an_em_run_evaluating_shows_evaluation_not_training_4_of_4() -> None:
    state = {
        "status": "running",
        "phase": "evaluation",
        "done": 1,
        "total": 3,
        "phases": {
            "model": {"done": 1, "total": 1},
            "training": {"done": 4, "total": 4},
            "evaluation": {"done": 1, "total": 3},
        },
    }
    assert progress_text(state) == "evaluation 1/3"


def test_a_completed_em_run_shows_its_end_not_a_stale_phase() -> None:
    state = {
        "status": "completed",
        "phase": "summary",
        "done": 1,
        "total": 1,
        "phases": {
            "persona": {"done": 1, "total": 3},  # bundled persona: a phase named twice
            "training": {"done": 4, "total": 4},
            "evaluation": {"done": 3, "total": 3},
            "summary": {"done": 1, "total": 1},
        },
    }
    assert progress_text(state) == "summary 1/1"
    assert main_phase(state)[0] == "summary"
    old = {"status": "completed", "phases": state["phases"]}  # no `phase` key: last started
    assert progress_text(old) == "summary 1/1"


def test_a_phase_of_unknown_length_shows_its_name() -> None:
    state = {"status": "running", "phase": "load", "done": 0, "total": None}
    assert progress_text(state) == "load"
    assert progress_text({}) == "-"


def test_time_left_is_shown_for_a_running_phase_and_not_once_it_ended() -> None:
    now = 1000.0
    state = {"status": "running", "phase": "process", "done": 4, "total": 10,
             "eta_seconds": 90.0, "eta_at": now - 30}  # fmt: skip
    assert progress_text(state, now=now) == "process 4/10 ~1:00 left"
    assert progress_text({**state, "status": "interrupted"}, now=now) == "process 4/10"
    # state.json still says running, but its runner died: `ls` shows it crashed, no ETA
    assert progress_text(state, now=now, status="crashed") == "process 4/10"


def test_the_pace_counts_only_this_attempts_units() -> None:
    clock = PhaseClock(started=100.0)
    assert clock.seconds_left(40, 100, now=100.1) is None  # earlier attempts' 40 units
    assert clock.seconds_left(50, 100, now=110.1) == 50.0  # 10 units in 10 s, 50 to go
    assert clock.seconds_left(100, 100, now=160.0) == 0.0
    fresh = PhaseClock(started=0.0)
    assert fresh.seconds_left(5, 10, now=10.0) == 10.0  # first report after 10 s: from 0


def test_plain_progress_lines_carry_the_time_left() -> None:
    lines: list[str] = []
    plain = PlainProgress(write=lines.append)
    plain({"type": "phase", "name": "prefit", "total": 100})
    plain({"type": "progress", "phase": "prefit", "done": 20, "total": 100, "eta_seconds": 80})
    assert lines[-1].endswith("prefit 20/100 (20%) ~1:20 left")


def test_ls_shows_the_current_phase_with_time_left_while_running(results_dir: Path, lab) -> None:
    p = lab(
        "run", "--kind", "counter", "--set", "units=150", "--set", "unit_seconds=0.03",
        "--detach", check=True,
    )  # fmt: skip
    run = resolve_run(results_dir, p.stdout.strip())
    try:
        deadline, seen = time.time() + 60, ""
        while time.time() < deadline and "left" not in seen:
            (entry,) = json.loads(lab("ls", "--json", check=True).stdout)
            seen = entry["progress"]
        assert seen.startswith("count ") and "/150 ~" in seen and seen.endswith(" left"), seen
    finally:
        lab("stop", run.short_id, "--wait", "30")
    (entry,) = json.loads(lab("ls", "--json", check=True).stdout)
    assert "left" not in entry["progress"]


def test_a_group_counts_its_runs(results_dir: Path, lab) -> None:
    assert main(["run", "--kind", "counter", "--set", "units=4", "--grid", "seed=1,2,3", "--quiet"]) == 0  # fmt: skip
    (group,) = list_groups(results_dir).values()
    for m in group.members[1:]:  # two members not finished: queued again
        m.set_aside("queued")
    assert group.progress() == (1, 3)
    line = next(ln for ln in lab("ls", "--fold", check=True).stdout.splitlines() if group.id in ln)
    assert "1/3 runs" in line and "4/4" not in line
