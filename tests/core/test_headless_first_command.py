"""The README's first command, `.venv/bin/labdeck`, with no terminal (CI, a pipe, nohup)
runs the demo preset headless with plain progress lines and exits 0 when it is done.

It used to draw the dashboard into the pipe at 80 % CPU forever. The demo preset is
taken from ./presets first, so this test runs the same command in a folder whose
`presets/degradation-demo.toml` is the shipped demo cut to one level and two prompts.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_labdeck_without_a_terminal_runs_the_demo_headless(tmp_path: Path):
    demo = (ROOT / "presets" / "degradation-demo.toml").read_text()
    demo = re.sub(r"levels = \[.*\]", "levels = [0.0]", demo)
    demo = re.sub(r"param_groups = \[.*\]", 'param_groups = ["mlp"]', demo)
    demo = re.sub(r"limit = \d+", "limit = 2", demo)
    demo = re.sub(r"max_new_tokens = \d+", "max_new_tokens = 4", demo)
    demo = re.sub(r"compute_perplexity = true", "compute_perplexity = false", demo)
    (tmp_path / "presets").mkdir()
    (tmp_path / "presets" / "degradation-demo.toml").write_text(demo)
    labdeck = Path(sys.executable).parent / "labdeck"
    env = {k: v for k, v in os.environ.items() if k != "LABDECK_RESULTS"}
    proc = subprocess.run(
        [str(labdeck)],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,  # stdout is a pipe, not a terminal
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "running the demo preset" in proc.stderr
    assert "\x1b[" not in proc.stdout  # plain lines, no cursor movement or colour
    assert re.search(r"phase sweep", proc.stdout) and "completed" in proc.stdout
    runs = [p for p in (tmp_path / "results").iterdir() if p.is_dir()]
    assert len(runs) == 1
    assert json.loads((runs[0] / "state.json").read_text())["status"] == "completed"
