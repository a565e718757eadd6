"""A run recorded before its kind gained a parameter resumes and reproduces with the
behaviour it began with (the kind's ADDED_PARAMS), not today's default."""

from __future__ import annotations

import json
from pathlib import Path

from labdeck.backend.presets import params_md5


def _records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "records.jsonl").read_text().splitlines()]


def test_old_config_without_an_added_parameter_resumes_and_reproduces_as_recorded(
    results_dir: Path, lab
) -> None:
    p = lab("run", "--kind", "counter", "--set", "units=4", "--set", "fail_at=0", "--quiet")
    assert p.returncode != 0
    (run,) = list(results_dir.iterdir())
    # Make it a config written before `note` existed: no such parameter, md5 and explicit
    # command without it.
    config = json.loads((run / "config.json").read_text())
    del config["params"]["note"]
    cmd = config["commands"]["run_explicit"].split(" --set ")
    config["commands"]["run_explicit"] = " --set ".join(c for c in cmd if not c.startswith("note="))
    config["params"]["fail_at"] = -1
    config["md5"] = params_md5(config["params"])
    config["commands"]["run_explicit"] = config["commands"]["run_explicit"].replace(
        "fail_at=0", "fail_at=-1"
    )
    (run / "config.json").write_text(json.dumps(config, indent=2))

    assert lab("resume", run.name, "--quiet").returncode == 0
    assert [r["note"] for r in _records(run)] == ["legacy"] * 4

    rep = lab("reproduce", run.name, "--quiet")
    assert rep.returncode == 0, rep.stderr
    (repro,) = [r for r in results_dir.iterdir() if r != run]
    assert _records(repro) == _records(run)
