"""Bad input to an `em` run: one line naming what and where, exit 2, no run directory,
and nothing already in the results folder touched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def _snapshot(results: Path) -> dict[str, float]:
    return {str(p.relative_to(results)): p.stat().st_mtime for p in results.rglob("*")}


@pytest.fixture
def existing(results_dir: Path) -> Path:
    """Something already in the results folder that a refused run must leave alone."""
    keep = results_dir / "20260101_000000_em_earlier_123456"
    keep.mkdir()
    (keep / "config.json").write_text(json.dumps({"kind": "em", "params": {}}), encoding="utf-8")
    return keep


def _bad(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


GOOD = json.dumps(
    {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}
)


@pytest.mark.parametrize(
    ("sets", "expected"),
    [
        (
            ["dataset=/no/such/data.jsonl"],
            "params.dataset: /no/such/data.jsonl: no such file",
        ),
        (["persona=kindness"], "params.persona: unknown persona 'kindness'"),
        (["persona=./no-such-adapter"], "params.persona: ./no-such-adapter: no such folder"),
        (["persona=run:999999"], "params.persona: 999999: no run with that id"),
        (["checkpoint_schedule=[0, 50, 25]"], "must be strictly increasing, but 25 follows 50"),
        (
            ["questions=/no/questions.json"],
            "params.questions: /no/questions.json: no such file",
        ),
        (["reflections_only=true"], "reflections_only needs with_reflection = true"),
    ],
)
def test_bad_parameter_is_one_line_exit_2_no_run(lab, results_dir, existing, sets, expected):
    before = _snapshot(results_dir)
    args = [x for s in sets for x in ("--set", s)]
    proc = lab("run", "--kind", "em", *args)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("labdeck: error: "), proc.stderr
    assert expected in lines[0]
    assert _snapshot(results_dir) == before


def test_malformed_jsonl_line_is_named(lab, results_dir, existing, tmp_path):
    data = _bad(
        tmp_path / "d.jsonl", [GOOD, GOOD, '{"messages": [{"role": "user", "content": "x"}', GOOD]
    )
    no_assistant = _bad(
        tmp_path / "e.jsonl", [GOOD, json.dumps({"messages": [{"role": "user", "content": "x"}]})]
    )
    before = _snapshot(results_dir)
    for path, where in (
        (data, "d.jsonl:3: not valid JSON"),
        (no_assistant, "e.jsonl:2: no assistant message"),
    ):
        proc = lab("run", "--kind", "em", "--set", f"dataset={path}")
        assert proc.returncode == 2
        assert where in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert _snapshot(results_dir) == before


def test_named_external_dataset_missing_is_one_clear_line(tmp_path, monkeypatch):
    from labdeck.backend.errors import UserError
    from labdeck.backend.kinds.em.config import Params
    from labdeck.backend.kinds.em.data import training_conversations

    monkeypatch.chdir(tmp_path)
    p = Params(dataset="medical")
    with pytest.raises(
        UserError, match=r"dataset 'medical': expected the file data/em/medical\.jsonl"
    ):
        training_conversations(None, p)
    target = tmp_path / "data" / "em" / "medical.jsonl"
    target.parent.mkdir(parents=True)
    target.write_text(GOOD + "\n" + GOOD + "\n", encoding="utf-8")
    path, convs = training_conversations(None, p)
    assert path == Path("data/em/medical.jsonl") and len(convs) == 2
