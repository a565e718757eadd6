"""`labdeck export RUN --format seed-json` of a feedback run, with and without --out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from feedback_helpers import api_preset, only_run
from together_loopback import Loopback

pytestmark = pytest.mark.slow


def test_seed_json_without_out_names_the_files_in_place(
    server: Loopback, results_dir: Path, lab, tmp_path: Path
) -> None:
    preset = api_preset(tmp_path, server.url, stages=["process"], n=2)
    assert lab("run", str(preset), "--results", str(results_dir)).returncode == 0
    run = only_run(results_dir)
    before = (run / "artifacts/processed.json").read_bytes()
    here = lab("export", run.name, "--format", "seed-json", "--results", str(results_dir))
    assert here.returncode == 0, here.stderr  # was: shutil.SameFileError, "internal error"
    assert Path(here.stdout.strip()) == run / "artifacts/processed.json"
    assert (run / "artifacts/processed.json").read_bytes() == before
    out = tmp_path / "seed-out"
    there = lab(
        "export", run.name, "--format", "seed-json", "--out", str(out),
        "--results", str(results_dir),
    )  # fmt: skip
    assert there.returncode == 0, there.stderr
    assert json.loads((out / "processed.json").read_text()) == json.loads(before)
