"""Read-only and full disks: one line naming the path and the errno, never a traceback;
exit 1 (2 when the results folder cannot hold a run from the start); a run that fills
the disk ends `failed` with the reason in state.json (a reserve frees the space for it).

The disks are real: a small tmpfs mounted for the test (remounted read-only, or filled).
Mounting needs root; elsewhere these tests skip.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from labdeck.backend.runs import list_runs


def _mount(point: Path, size: str) -> None:
    point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    point = tmp_path / "disk"
    try:
        _mount(point, "1m")
    except FileNotFoundError:
        pytest.skip("no mount command")
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False)


def _one_line(p: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in p.stderr and "internal error" not in p.stderr, p.stderr
    (line,) = p.stderr.strip().splitlines()
    assert line.startswith("labdeck: error: ")
    return line


def test_verbs_on_a_read_only_results_folder_name_the_path_and_errno(small_disk: Path, lab) -> None:
    results = small_disk / "results"
    env = {"LABDECK_RESULTS": str(results)}
    lab("run", "--kind", "counter", "--set", "units=3", "--quiet", env=env, check=True)
    (run,) = list_runs(results)
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    for argv, target in (
        (["tag", run.id, "x"], run.path / "notes.json"),
        (["note", run.id, "hello"], run.path / "notes.json"),
        (["export", run.id, "--format", "csv"], run.path / "artifacts" / "records.csv"),
        (["plot", run.id], run.path / "artifacts"),
    ):
        p = lab(*argv, env=env)
        line = _one_line(p)
        assert p.returncode == 1, (argv, p.stderr)
        assert str(target) in line and "(EROFS)" in line, (argv, line)
    for argv in (["reproduce", run.id], ["run", "--kind", "counter"]):
        p = lab(*argv, env=env)
        line = _one_line(p)
        assert p.returncode == 2, (argv, p.stderr)
        assert f"results folder {results}: Read-only file system (EROFS)" in line
    assert [r.id for r in list_runs(results)] == [run.id]


def test_a_results_folder_that_cannot_exist_is_exit_2(lab) -> None:
    p = lab("run", "--kind", "counter", env={"LABDECK_RESULTS": "/dev/zero/results"})
    assert p.returncode == 2
    assert "results folder /dev/zero/results: Not a directory (ENOTDIR)" in _one_line(p)


def test_a_run_that_fills_the_disk_ends_failed_with_the_reason(small_disk: Path, lab) -> None:
    results = small_disk / "results"
    note = json.dumps("x" * 1500)  # each record ~1.5 kB: 1 MB fills in a few hundred units
    p = lab(
        "run", "--kind", "counter", "--set", "units=3000", "--set", f"note={note}", "--quiet",
        env={"LABDECK_RESULTS": str(results)},
    )  # fmt: skip
    assert p.returncode == 1
    line = _one_line(p)
    assert "No space left on device (ENOSPC)" in line
    (run,) = list_runs(results)
    st = run.state()
    assert st["status"] == "failed" and "ENOSPC" in st["last_error"], st
    assert run.status() == "failed"  # not `crashed`: the runner wrote its end
    assert 0 < st["records"] < 3000
    assert not (run.path / ".state.reserve").exists()
    # with room again, resume finishes it: nothing recorded is lost or repeated
    subprocess.run(["mount", "-o", "remount,size=16m", str(small_disk)], check=True)
    lab("resume", run.id, "--quiet", env={"LABDECK_RESULTS": str(results)}, check=True)
    keys = [json.loads(x)["key"] for x in run.records_path.read_text().splitlines()]
    assert len(keys) == len(set(keys)) == 3000
