"""The feedback dry run estimates the stages that run here, and names those it cannot."""

from __future__ import annotations

import tomllib
from pathlib import Path

from labdeck.backend.kinds.feedback.config import Params
from labdeck.backend.kinds.feedback.experiment import dry_run

PRESETS = Path(__file__).resolve().parents[2] / "presets"


def demo(**changes) -> Params:
    with open(PRESETS / "feedback-demo.toml", "rb") as fh:
        return Params(**{**tomllib.load(fh)["params"], **changes})


def test_local_stages_are_estimated_from_the_models_config() -> None:
    rep = dry_run(demo())
    assert rep.memory_bytes and rep.memory_bytes > 500 * 1024**2  # the embedded model's weights
    text = "\n".join(rep.lines)
    for stage in ("process", "finetune", "answers", "judge"):
        assert f"{stage} " in text.split("rough time", 1)[1]
    assert "not counted" not in text
    assert dry_run(demo(epochs=6)).seconds > rep.seconds  # more training, more time


def test_api_stages_are_named_not_guessed() -> None:
    rep = dry_run(demo(provider="together", base_url="http://127.0.0.1:9/v1"))
    line = next(x for x in rep.lines if x.startswith("rough time"))
    assert "not counted: process (API)" in line and "evaluate (API)" in line
    assert "finetune" in line.split(":", 1)[1]  # the local fine-tune is still estimated
    only_api = dry_run(
        demo(provider="together", base_url="http://127.0.0.1:9/v1", stages=["process"])
    )
    assert only_api.seconds is None and only_api.memory_bytes is None
