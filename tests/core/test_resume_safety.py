"""What a resume must keep true: it reads the inputs the run recorded (or refuses, naming
the file and both hashes), it leaves running and completed group members alone and
keeps every attempt's time, it clears temp files a killed writer left, and `--quiet`
never hides why it failed."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from labdeck.backend.cli import main
from labdeck.backend.display import active_seconds
from labdeck.backend.groups import list_groups
from labdeck.backend.inputs import LEGACY, changed_since_recorded, fingerprint
from labdeck.backend.runs import Run, list_runs, resolve_run

ROOT = Path(__file__).resolve().parents[2]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _records(run: Run) -> int:
    return run.records_path.read_text().count("\n") if run.records_path.is_file() else 0


def _wait_records(run: Run, n: int, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while _records(run) < n:
        assert time.time() < deadline, f"fewer than {n} records after {timeout}s"
        time.sleep(0.02)


def test_resume_refuses_an_input_edited_mid_run_naming_the_file_and_both_hashes(
    results_dir: Path, lab, tmp_path: Path
) -> None:
    data = tmp_path / "data.txt"
    data.write_text("a\nb\n")
    p = lab(
        "run", "--kind", "counter", "--set", "units=200", "--set", "unit_seconds=0.02",
        "--set", f"data={data}", "--detach", check=True,
    )  # fmt: skip
    run = resolve_run(results_dir, p.stdout.strip())
    _wait_records(run, 3)
    lab("stop", run.short_id, "--wait", "30", check=True)
    recorded = run.config["inputs"]["data"]["sha256"]
    assert recorded == _sha(data)  # the plain sha256 of the bytes: `sha256sum` agrees
    data.write_text("a\nb\nc\n")  # edited while the run is stopped half-way
    now = _sha(data)
    n = _records(run)
    p = lab("resume", run.short_id)
    assert p.returncode == 2, p.stdout + p.stderr
    (line,) = p.stderr.strip().splitlines()
    print(line)
    assert line.startswith("labdeck: error: ")
    assert str(data.resolve()) in line and "params.data" in line
    assert f"recorded sha256 {recorded}" in line and f"now {now}" in line
    assert _records(run) == n  # nothing computed from the new text
    st = run.state()
    assert st["status"] == "interrupted" and st["last_error"] in line  # still as it was
    q = lab("resume", run.short_id, "--quiet")  # quiet still says why
    assert q.returncode == 2 and f"now {now}" in q.stderr
    data.write_text("a\nb\n")  # restored: the run continues where it was
    lab("resume", run.short_id, "--quiet", check=True)
    assert run.status() == "completed" and _records(run) == 200


def test_inputs_recorded_in_the_old_hash_are_compared_in_its_terms(tmp_path: Path) -> None:
    data = tmp_path / "d.txt"
    data.write_text("x\n")
    old = {"data": {"value": str(data), "path": str(data), "sha256": fingerprint(data, LEGACY)}}
    assert old["data"]["sha256"] != _sha(data)  # the old method hashed size + bytes
    assert changed_since_recorded(old) == []
    data.write_text("y\n")
    (change,) = changed_since_recorded(old)
    assert str(data) in change and old["data"]["sha256"] in change
    data.unlink()
    (gone,) = changed_since_recorded(old)
    assert "no longer exists" in gone


def test_reproduce_after_an_input_edit_that_no_longer_validates_is_one_line(
    results_dir: Path, tmp_path: Path, capsys
) -> None:
    """feedback reads its conversations file at validation: a broken edit is named, with
    what changed, instead of a pydantic traceback."""
    from labdeck.backend.cli.run_verbs import _new_run
    from labdeck.backend.kinds.feedback.conversations import __file__ as conv_module
    from labdeck.backend.presets import resolve

    bundled = Path(conv_module).parent / "data" / "conversations.jsonl"
    convs = tmp_path / "convs.jsonl"
    convs.write_text(bundled.read_text())
    resolved = resolve("feedback", {"conversations": str(convs)}, results=results_dir)
    run = _new_run(results_dir, None, resolved, "fb")
    before = _sha(convs)
    convs.write_text('{"conversation_id": "x", "messages": "not a list"}\n')
    assert main(["reproduce", run.short_id, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    (line,) = err.splitlines()
    assert "Traceback" not in err and "internal error" not in err
    assert "params.conversations" in line and str(convs.resolve()) in line
    assert f"recorded sha256 {before}" in line and f"now {_sha(convs)}" in line
    assert [r.id for r in list_runs(results_dir)] == [run.id]  # nothing created


def test_a_failing_quiet_run_prints_its_error_line(results_dir: Path, lab) -> None:
    p = lab("run", "--kind", "counter", "--set", "units=5", "--set", "fail_at=3", "--quiet")
    assert p.returncode == 1 and p.stdout == ""
    (line,) = p.stderr.strip().splitlines()
    assert "planned failure at unit 3" in line and line.startswith("labdeck: error: ")
    (run,) = list_runs(results_dir)
    r = lab("resume", run.short_id, "--quiet")
    assert r.returncode == 1 and "planned failure at unit 3" in r.stderr


def test_resume_group_leaves_running_and_completed_members_alone_and_keeps_attempt_time(
    results_dir: Path, lab
) -> None:
    assert main(["run", "--kind", "counter", "--set", "units=2", "--grid", "seed=1,2,3", "--quiet"]) == 0  # fmt: skip
    (group,) = list_groups(results_dir).values()
    done, live, dead = group.members
    # `dead` crashed after 144 s of work (state still `running`, its pid gone)
    t0 = time.time() - 1000
    dead.write_state(
        status="running", pid=2**22 + 7, host=os.uname().nodename, attempt_started=t0,
        heartbeat=t0 + 144, active_before=0.0, active_seconds=None,
    )  # fmt: skip
    assert dead.status() == "crashed"
    assert round(active_seconds(dead.state(), "crashed")) == 144
    # `live` is running now: a real process holds its pid
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        import psutil

        live.write_state(
            status="running", pid=sleeper.pid, pid_started=psutil.Process(sleeper.pid).create_time(),
            host=os.uname().nodename, attempt_started=time.time(), heartbeat=time.time(),
        )  # fmt: skip
        assert live.status() == "running"
        before_done, before_live = done.state(), live.state()
        main(["resume", group.id, "--quiet"])  # restarts the queue in the background
        deadline = time.time() + 90
        while dead.status() != "completed" and time.time() < deadline:
            time.sleep(0.2)
        assert done.state() == before_done  # completed: untouched
        assert live.state() == before_live  # running: untouched (no queued, pid kept)
        st = dead.state()
        assert st["status"] == "completed" and st["attempts"] >= 2
        assert active_seconds(st, "completed") >= 144  # the crashed attempt's time is kept
    finally:
        sleeper.send_signal(signal.SIGKILL)
        sleeper.wait()


def test_resume_removes_temp_files_a_killed_writer_left(results_dir: Path, lab) -> None:
    lab("run", "--kind", "counter", "--set", "units=3", "--set", "fail_at=1", "--quiet")
    (run,) = list_runs(results_dir)
    # what a kill between the temp write and the rename leaves (a dead writer's pid)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    left = [
        run.path / f".state.json.{dead}-abc123.tmp",
        run.path / "artifacts" / f".summary.json.{dead}-def456.tmp",
    ]
    for f in left:
        f.write_text('{"status": "runn')
    mine = run.path / f".state.json.{os.getpid()}-live99.tmp"  # a live writer's: kept
    mine.write_text("{}")
    lab("resume", run.short_id, "--quiet")
    assert not any(f.exists() for f in left)
    assert mine.exists()
    assert "removed temp files left by a killed writer" in (run.path / "runner.log").read_text()


def test_a_feedback_run_refuses_to_start_on_an_edited_conversations_file(
    results_dir: Path, tmp_path: Path, capsys
) -> None:
    """The check is the runner's: any kind, any attempt (here a run that waited queued
    while its conversations file was edited), before the kind reads anything."""
    from labdeck.backend.cli.run_verbs import _new_run
    from labdeck.backend.kinds.feedback.conversations import __file__ as conv_module
    from labdeck.backend.presets import resolve

    bundled = Path(conv_module).parent / "data" / "conversations.jsonl"
    convs = tmp_path / "convs.jsonl"
    convs.write_text(bundled.read_text())
    run = _new_run(results_dir, None, resolve("feedback", {"conversations": str(convs)}), "fb")
    before = _sha(convs)
    lines = convs.read_text().splitlines()
    convs.write_text("\n".join(lines[1:]) + "\n")  # still valid, one conversation fewer
    assert main(["resume", run.short_id, "--quiet"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "params.conversations" in line and str(convs.resolve()) in line
    assert f"recorded sha256 {before}" in line and f"now {_sha(convs)}" in line
    assert not run.records_path.exists() or _records(run) == 0
