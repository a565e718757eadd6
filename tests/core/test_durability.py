"""What survives a crash: fsynced records and config, the checkpoint swap, the runner lock,
and a resume that refuses an edited config.json."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labdeck.backend import durable
from labdeck.backend.errors import RunLocked
from labdeck.backend.ledger import Ledger
from labdeck.backend.runs import (
    RUNNER_LOCK,
    STALE_SECONDS,
    RunLock,
    boot_id,
    create_run_dir,
    list_runs,
)


@pytest.fixture
def fsynced(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every path os.fsync is called on (resolved through /proc), in order."""
    seen: list[str] = []
    real = os.fsync

    def spy(fd: int) -> None:
        seen.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    return seen


def test_records_are_group_committed_and_nothing_is_left_unsynced(tmp_path: Path, fsynced):
    path = tmp_path / "records.jsonl"
    led = Ledger(path, sync_every=3600)  # one group for the whole burst
    for i in range(50):
        led.append(f"k{i}", {"i": i})
    assert fsynced.count(str(path)) == 0  # grouped: no per-record disk round trip
    led.sync()
    assert fsynced.count(str(path)) == 1
    led.append("last", {"i": 50})
    led.close()  # what the runner does at the end: the pending record is committed
    assert fsynced.count(str(path)) == 2

    led = Ledger(path, sync_every=0.0)  # a quiet interval: every unit boundary commits
    led.append("again", {})
    assert fsynced.count(str(path)) == 3
    led.close()


def test_config_and_run_directory_names_are_fsynced_at_creation(tmp_path: Path, fsynced):
    results = tmp_path / "results"
    results.mkdir()
    run = create_run_dir(results, "20260101_000000_counter_t_123456", '{"params": {}}\n')
    assert str(run.path / "config.json") in fsynced
    assert str(run.path) in fsynced  # config.json's and state.json's names
    assert str(results) in fsynced  # the run directory's own name


# ----------------------------------------------------------------------- checkpoint swap


class Killed(Exception):
    """Stands for a SIGKILL at one point of the swap."""


def _kill_at(step: str):
    def hook(name: str) -> None:
        if name == step:
            raise Killed(step)

    return hook


@pytest.mark.parametrize("step", durable.SWAP_STEPS)
def test_a_kill_at_any_step_of_the_swap_leaves_one_complete_checkpoint(tmp_path: Path, step):
    ckpt = tmp_path / "checkpoints"
    live = ckpt / "latest"
    live.mkdir(parents=True)
    (live / "epoch").write_text("1")
    staging = ckpt / ".staging-latest"
    staging.mkdir()
    (staging / "epoch").write_text("2")
    with pytest.raises(Killed):
        durable.swap_dir(staging, live, _kill_at(step))
    durable.recover_swaps(ckpt)  # what the next run context does first
    assert (live / "epoch").read_text() == ("1" if step in SWAP_STEPS_BEFORE_NEW else "2")
    assert sorted(p.name for p in ckpt.iterdir()) == ["latest"]


SWAP_STEPS_BEFORE_NEW = ("staged", "old_moved_aside")


def test_the_first_checkpoint_killed_before_its_rename_leaves_none(tmp_path: Path):
    ckpt = tmp_path / "checkpoints"
    staging = ckpt / ".staging-best"
    staging.mkdir(parents=True)
    (staging / "epoch").write_text("1")
    with pytest.raises(Killed):
        durable.swap_dir(staging, ckpt / "best", _kill_at("old_moved_aside"))
    durable.recover_swaps(ckpt)
    assert list(ckpt.iterdir()) == []  # no half checkpoint: resume starts from scratch


# ----------------------------------------------------------------------- runner lock


def _run_dir(tmp_path: Path):
    results = tmp_path / "results"
    results.mkdir(exist_ok=True)
    return create_run_dir(results, "20260101_000000_counter_t_654321", '{"params": {}}\n')


def _write_lock(run, **holder) -> None:
    base = {
        "host": socket.gethostname(),
        "pid": 1,
        "pid_started": None,
        "boot_id": boot_id(),
        "heartbeat": time.time(),
    }
    (run.path / RUNNER_LOCK).write_text(json.dumps({**base, **holder}))


def test_a_live_runner_on_this_host_is_refused_by_the_lock_file_alone(tmp_path: Path):
    run = _run_dir(tmp_path)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _write_lock(run, pid=other.pid)  # no flock held: only the lock file guards
        with pytest.raises(RunLocked, match=rf"pid {other.pid} on {socket.gethostname()}"):
            RunLock(run).acquire()
    finally:
        other.kill()
        other.wait()


def test_a_stale_lock_of_a_dead_pid_is_taken_over(tmp_path: Path):
    run = _run_dir(tmp_path)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    _write_lock(run, pid=gone.pid, heartbeat=time.time() - 2 * STALE_SECONDS)
    with RunLock(run):
        held = json.loads((run.path / RUNNER_LOCK).read_text())
        assert held["pid"] == os.getpid() and held["boot_id"] == boot_id()
        with pytest.raises(RunLocked, match=f"pid {os.getpid()}"):
            RunLock(run).acquire()  # and it holds against a second taker
    assert not (run.path / RUNNER_LOCK).exists()


def test_a_fresh_lock_of_another_host_is_not_taken_over_but_a_stale_one_is(tmp_path: Path):
    run = _run_dir(tmp_path)
    _write_lock(run, host="node-17", pid=4242, boot_id="other-boot")
    with pytest.raises(RunLocked, match="pid 4242 on node-17"):
        RunLock(run).acquire()
    assert json.loads((run.path / RUNNER_LOCK).read_text())["host"] == "node-17"
    _write_lock(run, host="node-17", pid=4242, heartbeat=time.time() - 2 * STALE_SECONDS)
    RunLock(run).acquire().release()


def test_a_running_runner_refuses_a_second_one_with_pid_and_host(results_dir: Path, lab):
    argv = ["run", "--kind", "counter", "--quiet", "--set", "units=400"]
    first = subprocess.Popen(
        [sys.executable, "-m", "labdeck.backend.cli", *argv, "--set", "unit_seconds=0.05"],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            runs = list_runs(results_dir)
            if runs and (runs[0].path / RUNNER_LOCK).exists():
                break
            time.sleep(0.1)
        second = lab("resume", runs[0].short_id, "--quiet")
        assert second.returncode == 3
        assert f"pid {first.pid} on {socket.gethostname()}" in second.stderr
    finally:
        first.kill()
        first.wait()


# ----------------------------------------------------------------------- config md5


def test_resume_refuses_an_edited_config(results_dir: Path, lab):
    p = lab("run", "--kind", "counter", "--set", "units=5", "--set", "fail_at=2", "--quiet")
    assert p.returncode == 1
    (run,) = list_runs(results_dir)
    cfg = json.loads((run.path / "config.json").read_text())
    cfg["params"]["units"] = 50
    (run.path / "config.json").write_text(json.dumps(cfg, indent=2))
    again = lab("resume", run.short_id, "--quiet")
    assert again.returncode == 2
    lines = again.stderr.strip().splitlines()
    assert len(lines) == 1 and "config.json: params were edited after creation" in lines[0]
    assert len((run.path / "records.jsonl").read_text().splitlines()) == 2  # nothing touched
