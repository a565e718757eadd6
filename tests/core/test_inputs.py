"""Input files and run references: checked at validation, recorded with a fingerprint,
read through the resolved path, and verified by `reproduce`."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from labdeck.backend.inputs import fingerprint, parse_run_ref


def _only_run(results: Path) -> Path:
    (run,) = [p for p in results.iterdir() if p.is_dir()]
    return run


def _records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "records.jsonl").read_text().splitlines()]


def test_missing_input_file_is_one_line_exit_2_and_no_run_directory(
    results_dir: Path, lab, tmp_path: Path
) -> None:
    p = lab("run", "--kind", "counter", "--set", f"data={tmp_path / 'nope.txt'}", "--quiet")
    assert p.returncode == 2
    (line,) = p.stderr.strip().splitlines()
    assert "params.data" in line and "nope.txt" in line and "no such file" in line
    assert list(results_dir.iterdir()) == []
    dry = lab("run", "--kind", "counter", "--set", f"data={tmp_path}", "--dry-run")
    assert dry.returncode == 2 and "not a regular file" in dry.stderr


def test_input_recorded_with_fingerprint_and_read_through_resolved_path(
    results_dir: Path, lab, tmp_path: Path
) -> None:
    data = tmp_path / "data.txt"
    data.write_text("a\nb\nc\n")
    p = lab("run", "--kind", "counter", "--set", "units=2", "--set", f"data={data}", "--quiet")
    assert p.returncode == 0, p.stderr
    run = _only_run(results_dir)
    entry = json.loads((run / "config.json").read_text())["inputs"]["data"]
    assert entry == {
        "value": str(data),
        "path": str(data.resolve()),
        "sha256": hashlib.sha256(data.read_bytes()).hexdigest(),  # what `sha256sum` prints
        "hash": "sha256",
    }
    assert entry["sha256"] == fingerprint(data)
    assert all(r["value"] >= 3 for r in _records(run))


def test_reproduce_refuses_when_an_input_changed_and_names_it(
    results_dir: Path, lab, tmp_path: Path
) -> None:
    data = tmp_path / "data.txt"
    data.write_text("a\n")
    assert (
        lab("run", "--kind", "counter", "--set", "units=2", "--set", f"data={data}").returncode == 0
    )
    run = _only_run(results_dir)
    data.write_text("a\nb\n")
    p = lab("reproduce", run.name, "--quiet")
    assert p.returncode == 2
    assert "params.data" in p.stderr and "content changed (recorded sha256" in p.stderr
    assert [r.name for r in results_dir.iterdir()] == [run.name]  # nothing created
    data.write_text("a\n")
    assert lab("reproduce", run.name, "--quiet").returncode == 0


def test_run_reference_resolves_to_an_artifact_and_records_the_runs_md5(
    results_dir: Path, lab
) -> None:
    assert lab("run", "--kind", "counter", "--set", "units=3", "--quiet").returncode == 0
    first = _only_run(results_dir)
    short = first.name.rsplit("_", 1)[-1]
    ref = f"run:{short}/records"
    p = lab("run", "--kind", "counter", "--set", "units=1", "--set", f"data={ref}", "--quiet")
    assert p.returncode == 0, p.stderr
    (second,) = [r for r in results_dir.iterdir() if r != first]
    entry = json.loads((second / "config.json").read_text())["inputs"]["data"]
    assert entry["path"] == str((first / "records.jsonl").resolve())
    assert entry["run"] == {
        "id": first.name,
        "md5": json.loads((first / "config.json").read_text())["md5"],
        "artifact": "records",
    }
    assert _records(second)[0]["value"] >= 3  # three record lines were read


def test_bad_run_references_are_one_line_and_create_nothing(results_dir: Path, lab) -> None:
    assert lab("run", "--kind", "counter", "--set", "units=2", "--quiet").returncode == 0
    failed = lab("run", "--kind", "counter", "--set", "fail_at=0", "--quiet")
    assert failed.returncode != 0
    runs = sorted(results_dir.iterdir())
    short = {json.loads((r / "state.json").read_text())["status"]: r.name[-6:] for r in runs}
    ok_short, bad_short = short["completed"], short["failed"]
    cases = {
        "run:999999": "no run with that id",
        f"run:{bad_short}": "is failed; only a completed run",
        f"run:{ok_short}/weights": "has no artifact 'weights' (known: summary, records)",
        "run:": "a run reference is run:<id>",
    }
    for ref, message in cases.items():
        p = lab("run", "--kind", "counter", "--set", f"data={ref}", "--quiet")
        assert p.returncode == 2, (ref, p.stderr)
        assert len(p.stderr.strip().splitlines()) == 1 and message in p.stderr, (ref, p.stderr)
    assert sorted(results_dir.iterdir()) == runs


def test_parse_run_ref() -> None:
    assert parse_run_ref("run:123456") == ("123456", None)
    assert parse_run_ref("run:123456/adapter") == ("123456", "adapter")
    assert parse_run_ref("data/x.jsonl") is None
