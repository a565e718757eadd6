"""The API key reaches no file of a run and nothing printed, even when the API echoes it.

The loopback server answers 401 with an error body that quotes the request's
Authorization header (as some gateways do), and a fine-tune job fails with a message
holding the key (an exception message carrying it through the runner's error path).
Every file under the run directory and everything the CLI printed (`run`, `resume`,
`show`, `show --json`, `ls`, `ls --json`) is searched for the key.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from feedback_helpers import KEY, api_preset, only_run
from together_loopback import Loopback

pytestmark = pytest.mark.slow


def key_hits(run: Path, printed: list[subprocess.CompletedProcess]) -> dict[str, int]:
    """Occurrences of the key per file of the run directory and per printed stream."""
    hits: dict[str, int] = {}
    for f in run.rglob("*"):
        if f.is_file() and (n := f.read_bytes().count(KEY.encode())):
            hits[str(f.relative_to(run))] = n
    for p in printed:
        for name, text in (("stdout", p.stdout), ("stderr", p.stderr)):
            if n := text.count(KEY):
                hits[f"{' '.join(p.args[3:6])} {name}"] = n
    return hits


def _everything_printed(lab, run: Path, results: Path) -> list[subprocess.CompletedProcess]:
    where = ("--results", str(results))
    return [
        lab("show", run.name, *where),
        lab("show", run.name, "--json", *where),
        lab("ls", *where),
        lab("ls", "--json", *where),
        lab("resume", run.name, *where),
    ]


def test_a_401_that_echoes_the_key_is_masked_everywhere(
    server: Loopback, results_dir: Path, lab, tmp_path: Path
) -> None:
    server.fault("/v1/chat", "401", 1000)
    preset = api_preset(tmp_path, server.url, stages=["process"], n=4, concurrency=2)
    printed = [lab("run", str(preset), "--results", str(results_dir))]
    assert printed[0].returncode == 1
    run = only_run(results_dir)
    printed += _everything_printed(lab, run, results_dir)
    state = (run / "state.json").read_text()
    assert "Bearer ***" in state  # the echo reached the error, masked
    assert key_hits(run, printed) == {}


def test_a_key_in_an_exception_message_is_masked_everywhere(
    server: Loopback, results_dir: Path, lab, tmp_path: Path
) -> None:
    server.state.fail_job = f"billing: key {KEY} has no credit"
    preset = api_preset(tmp_path, server.url, stages=["process", "finetune"], n=2)
    printed = [lab("run", str(preset), "--results", str(results_dir))]
    assert printed[0].returncode == 1
    run = only_run(results_dir)
    printed += _everything_printed(lab, run, results_dir)
    log = (run / "runner.log").read_text()
    assert "key *** has no credit" in log and "Traceback" in log
    assert key_hits(run, printed) == {}


def test_the_terminal_view_and_console_log_are_masked(
    server: Loopback, results_dir: Path, tmp_path: Path, capfd, monkeypatch
) -> None:
    """In-process, as on a terminal: live progress view and the console log handler."""
    from labdeck.backend import display
    from labdeck.backend.cli import main

    monkeypatch.setattr(display, "piped", lambda: False)
    server.fault("/v1/chat", "401", 1000)
    preset = api_preset(tmp_path, server.url, stages=["process"], n=2, concurrency=1)
    assert main(["run", str(preset), "--results", str(results_dir)]) == 1
    out, err = capfd.readouterr()
    assert "Bearer ***" in out + err and KEY not in out + err
