"""Error text, titles and parameter values are printed as they are, never read as markup.

A last error holding `[/...]` used to stop `resume` with "internal error" (rich markup in
the final line) and `[red]` vanished from what was shown. The text is fed through every
command that prints a last error: the run's own result line, `resume`, `show`, `ls`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

NASTY = "[red]x[/ then [/bold] and [/]"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def plain(text: str) -> str:
    return " ".join(ANSI.sub("", text).split())  # colours off, terminal wrapping undone


def only_run(results: Path) -> Path:
    [run] = [p for p in results.iterdir() if p.is_dir()]
    return run


@pytest.mark.parametrize("piped", [True, False])
def test_error_text_with_markup_is_printed_verbatim(results_dir: Path, lab, piped: bool) -> None:
    env = {} if piped else {"TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "0", "COLUMNS": "400"}
    where = ("--results", str(results_dir))
    first = lab(
        "run", "--kind", "counter", "--set", "units=3", "--set", "fail_at=1",
        "--set", f"note={json.dumps(NASTY)}", "--title", NASTY, *where, env=env,
    )  # fmt: skip
    assert first.returncode == 1, first.stderr
    assert f"error: RuntimeError: planned failure at unit 1: {NASTY}" in plain(first.stdout)
    run = only_run(results_dir)
    again = lab("resume", run.name, *where, env=env)
    assert again.returncode == 1 and "internal error" not in again.stderr, again.stderr
    assert f"planned failure at unit 1: {NASTY}" in plain(again.stdout)
    show = lab("show", run.name, *where, env=env)
    assert show.returncode == 0, show.stderr
    shown = plain(show.stdout)
    assert f"last error: RuntimeError: planned failure at unit 1: {NASTY}" in shown
    assert f"title={NASTY}" in shown
    listing = lab("ls", *where, env=env)
    assert listing.returncode == 0 and "internal error" not in listing.stderr, listing.stderr
    listed = json.loads(lab("ls", "--json", *where).stdout)
    assert listed[0]["title"] == NASTY
