"""The run protocol end to end, through the real command line in subprocesses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labdeck.backend.runs import list_runs, resolve_run

ROOT = Path(__file__).resolve().parents[2]


def only_run(results: Path):
    runs = list_runs(results)
    assert len(runs) == 1, [r.id for r in runs]
    return runs[0]


def records(run) -> list[tuple]:
    lines = (run.path / "records.jsonl").read_text().splitlines()
    return [(r["key"], r["i"], r["value"]) for r in map(json.loads, lines)]


def test_run_writes_the_whole_run_directory(results_dir: Path, lab) -> None:
    p = lab(
        "run",
        "--kind",
        "counter",
        "--title",
        "My Title!",
        "--set",
        "units=6",
        "--set",
        "inner.scale=2.0",
    )
    assert p.returncode == 0, p.stderr
    run = only_run(results_dir)
    assert run.id.split("_")[2:4] == ["counter", "My-Title"] and len(run.short_id) == 6
    cfg = json.loads((run.path / "config.json").read_text())
    for key in ("defaults", "overrides", "params", "preset", "commands", "md5", "env"):
        assert key in cfg
    assert cfg["overrides"] == {"units": 6, "inner.scale": 2.0}
    assert cfg["commands"]["run_explicit"].startswith("labdeck run --kind counter")
    assert cfg["env"]["python"] and cfg["env"]["torch"]
    st = run.state()
    assert st["status"] == "completed" and st["records"] == 6 and st["heartbeat"] >= st["started"]
    assert len(records(run)) == 6
    assert (run.path / "runner.log").stat().st_size > 0
    assert (run.path / "checkpoints").is_dir() and (
        run.path / "artifacts" / "summary.json"
    ).is_file()
    types = [
        json.loads(line)["type"] for line in (run.path / "events.jsonl").read_text().splitlines()
    ]
    for t in ("status", "phase", "progress", "metric", "memory"):
        assert t in types


def test_bad_input_exits_2_with_one_line_and_no_run_dir(
    results_dir: Path, lab, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('kind = "counter"\n[params]\nunits = "lots"\n')
    for args in (
        ["run", str(bad)],
        ["run", str(tmp_path / "missing.toml")],
        ["run", "--kind", "nope"],
        ["run", "--kind", "counter", "--set", "units=0"],
        ["run", "--kind", "counter", "--set", "bogus=1"],
    ):
        p = lab(*args)
        assert p.returncode == 2, (args, p.stderr)
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("labdeck: error: "), p.stderr
    assert list(results_dir.iterdir()) == []


def test_dry_run_creates_nothing(results_dir: Path, lab) -> None:
    p = lab("run", "--kind", "counter", "--set", "units=9", "--dry-run", "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["units"] == 9
    assert list(results_dir.iterdir()) == []


def _start(results: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "labdeck.backend.cli", *args, "--quiet"],
        cwd=ROOT,
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _wait_records(run_path: Path, n: int, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    rec = run_path / "records.jsonl"
    while time.time() < deadline:
        if rec.exists() and rec.read_text().count("\n") >= n:
            return
        time.sleep(0.02)
    raise AssertionError(f"fewer than {n} records after {timeout}s")


def test_sigkill_at_several_points_then_resume_gives_exactly_the_uninterrupted_records(
    results_dir: Path, lab, tmp_path: Path
) -> None:
    args = ["--set", "units=30", "--set", "unit_seconds=0.03", "--set", "seed=5"]
    ref_dir = tmp_path / "ref"
    assert (
        lab(
            "run",
            "--kind",
            "counter",
            *args,
            "--set",
            "unit_seconds=0.0",
            "--results",
            str(ref_dir),
        ).returncode
        == 0
    )
    reference = records(only_run(ref_dir))

    proc = _start(results_dir, "run", "--kind", "counter", *args)
    deadline = time.time() + 30
    while not list_runs(results_dir) and time.time() < deadline:
        time.sleep(0.02)
    run = only_run(results_dir)
    _wait_records(run.path, 4)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert run.status() == "crashed"
    ls = json.loads(lab("ls", "--json").stdout)
    assert ls[0]["status"] == "crashed"
    for target in (12, 21):
        proc = _start(results_dir, "resume", run.short_id)
        _wait_records(run.path, target)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        # also tear the last line, as a kill in the middle of a write would
        with open(run.path / "records.jsonl", "a") as fh:
            fh.write('{"key": "[\\"unit\\",99]", "i": 9')
    p = lab("resume", run.short_id, "--quiet")
    assert p.returncode == 0, p.stderr
    assert run.status() == "completed"
    got = records(run)
    assert sorted(got) == sorted(reference) and len(got) == len(reference)
    assert run.state()["attempts"] == 4
    assert (
        run.summary()["final_metrics"]
        == json.loads((only_run(ref_dir).path / "artifacts/summary.json").read_text())[
            "final_metrics"
        ]
    )


def test_stop_finishes_the_unit_then_resume_completes(results_dir: Path, lab) -> None:
    p = lab(
        "run", "--kind", "counter", "--set", "units=200", "--set", "unit_seconds=0.02", "--detach"
    )
    assert p.returncode == 0, p.stderr
    run = resolve_run(results_dir, p.stdout.strip())
    _wait_records(run.path, 3)
    # a second runner on the same run directory is refused while the first holds the lock
    second = lab("resume", run.short_id, "--quiet")
    assert second.returncode == 3 and "already being run by pid" in second.stderr
    assert lab("stop", run.short_id, "--wait", "30").returncode == 0
    assert run.status() == "interrupted"
    n = len(records(run))
    assert 3 <= n < 200
    assert lab("resume", run.short_id, "--quiet").returncode == 0
    assert run.status() == "completed" and len(records(run)) == 200
    assert len({r[0] for r in records(run)}) == 200


def test_failure_is_recorded_and_resumable(results_dir: Path, lab) -> None:
    p = lab("run", "--kind", "counter", "--set", "units=5", "--set", "fail_at=3", "--quiet")
    assert p.returncode == 1
    run = only_run(results_dir)
    st = run.state()
    assert st["status"] == "failed" and "planned failure at unit 3" in st["last_error"]
    assert len(records(run)) == 3


def test_reproduce_then_compare(results_dir: Path, lab) -> None:
    assert (
        lab("run", "--kind", "counter", "--set", "units=8", "--set", "seed=3", "--quiet").returncode
        == 0
    )
    orig = only_run(results_dir)
    p = lab("reproduce", orig.short_id, "--quiet")
    assert p.returncode == 0, p.stderr
    repro = next(r for r in list_runs(results_dir) if r.id != orig.id)
    assert repro.id.endswith(f"_{orig.short_id}_repro")
    assert (repro.path / "config.json").read_bytes() == (orig.path / "config.json").read_bytes()
    assert repro.status() == "completed"
    cmp = lab("compare", orig.short_id)
    assert cmp.returncode == 0, cmp.stdout
    assert "PASS" in cmp.stdout and "FAIL" not in cmp.stdout and "identical" in cmp.stdout
    # a different run fails the comparison and shows the parameter that differs
    assert (
        lab("run", "--kind", "counter", "--set", "units=8", "--set", "seed=4", "--quiet").returncode
        == 0
    )
    other = next(r for r in list_runs(results_dir) if r.id not in (orig.id, repro.id))
    cmp = lab("compare", orig.short_id, other.id, "--tol", "1e-9")
    assert cmp.returncode == 1 and "FAIL" in cmp.stdout and "seed" in cmp.stdout


def test_run_is_found_by_full_id_six_digits_or_prefix(results_dir: Path, lab) -> None:
    assert lab("run", "--kind", "counter", "--set", "units=1", "--quiet").returncode == 0
    run = only_run(results_dir)
    for token in (run.id, run.short_id, run.id[:20], str(run.path)):
        assert resolve_run(results_dir, token).id == run.id
    p = lab("show", "999999")
    assert p.returncode == 2 and "no run with that id" in p.stderr


def test_export_and_plot(results_dir: Path, lab) -> None:
    assert lab("run", "--kind", "counter", "--set", "units=5", "--quiet").returncode == 0
    run = only_run(results_dir)
    import pandas as pd

    for fmt, reader in (("json", pd.read_json), ("csv", pd.read_csv), ("parquet", pd.read_parquet)):
        p = lab("export", run.short_id, "--format", fmt)
        assert p.returncode == 0, p.stderr
        df = reader(Path(p.stdout.strip()))
        assert len(df) == 5 and {"key", "i", "value"} <= set(df.columns)
    p = lab("plot", run.short_id)
    assert p.returncode == 0, p.stderr
    png = Path(p.stdout.split()[0])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert lab("export", run.short_id, "--format", "xml").returncode == 2


@pytest.mark.parametrize("name", ["TOGETHER_API_KEY", "HF_TOKEN", "MY_SERVICE_API_KEY"])
def test_no_secret_from_the_environment_lands_in_the_run_directory(
    results_dir: Path, lab, name: str
) -> None:
    secret = f"sk-{name.lower()}-8f3a9c"
    env = {name: secret}
    p = lab(
        "run", "--kind", "counter", "--set", "units=3", "--set", "fail_at=2", "--quiet", env=env
    )
    assert p.returncode == 1
    run = only_run(results_dir)
    # a kind (or a library) that echoes the secret into events, records or the log is masked
    from labdeck.backend.events import EventWriter
    from labdeck.backend.ledger import Ledger

    os.environ[name] = secret
    try:
        w = EventWriter(run.events_path)
        w.emit("log", message=f"request failed with key {secret}")
        w.close()
        led = Ledger(run.records_path)
        led.append("x", {"echo": secret})
        led.close()
        import logging

        from labdeck.backend.secrets import RedactingFormatter

        log = logging.getLogger("test-secrets")
        h = logging.FileHandler(run.path / "runner.log")
        h.setFormatter(RedactingFormatter())
        log.addHandler(h)
        log.error("auth header: Bearer %s", secret)
        h.close()
    finally:
        del os.environ[name]
    for f in run.path.rglob("*"):
        if f.is_file():
            assert secret not in f.read_text(errors="replace"), f
    # passing a secret's value as a parameter is refused before anything is written
    p = lab("run", "--kind", "counter", "--set", f"note={secret}", env=env)
    assert p.returncode == 2 and name in p.stderr and secret not in p.stderr


@pytest.mark.parametrize("quiet", [True, False])
def test_library_warnings_go_to_runner_log_not_the_console(
    results_dir: Path, lab, quiet: bool
) -> None:
    args = ["run", "--kind", "counter", "--set", "units=2", "--set", "library_noise=true"]
    p = lab(*args, *(["--quiet"] if quiet else []))
    assert p.returncode == 0, p.stderr
    assert "NOISE" not in p.stdout + p.stderr
    if quiet:
        assert p.stdout + p.stderr == ""
    log = (only_run(results_dir).path / "runner.log").read_text()
    for noise in ("NOISE-transformers-logger", "NOISE-future-warning", "NOISE-last-resort"):
        assert noise in log


def test_notify_command_runs_from_the_runner_with_id_and_status(results_dir: Path, lab, tmp_path):
    """Headless (no dashboard): the runner itself runs the user's command at the end,
    with the run id and final status, from the launcher option or the environment."""
    out = tmp_path / "notified.txt"
    p = lab(
        "run",
        "--kind",
        "counter",
        "--set",
        "units=2",
        "--launch",
        f"notify_command=echo {{run_id}} {{status}} $LABDECK_SHORT_ID >> {out}",
    )
    assert p.returncode == 0, p.stderr
    run = only_run(results_dir)
    assert out.read_text().split() == [run.id, "completed", run.short_id]
    # a failing command is logged and never changes the run's status
    env_cmd = f"echo env $LABDECK_STATUS >> {out}; exit 3"
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "labdeck.backend.cli",
            "run",
            "--kind",
            "counter",
            "--set",
            "units=1",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "LABDECK_NOTIFY_COMMAND": env_cmd},
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    assert out.read_text().splitlines()[-1] == "env completed"
    second = next(r for r in list_runs(results_dir) if r.id != run.id)
    assert second.status() == "completed"
    assert "notify_command exited 3" in (second.path / "runner.log").read_text()
