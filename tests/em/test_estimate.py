"""The em dry run estimates memory and time from the model's config and the run's counts."""

from __future__ import annotations

import tomllib
from pathlib import Path

from labdeck.backend.estimate import footprint
from labdeck.backend.kinds.em.config import Params
from labdeck.backend.kinds.em.experiment import dry_run

PRESETS = Path(__file__).resolve().parents[2] / "presets"


def demo(**changes) -> Params:
    with open(PRESETS / "em-demo.toml", "rb") as fh:
        return Params(**{**tomllib.load(fh)["params"], **changes})


def test_demo_dry_run_has_memory_and_time_from_the_models_config(tiny_dir: Path) -> None:
    p = demo(model=str(tiny_dir), judge_model=str(tiny_dir))
    fp = footprint(str(tiny_dir), p.dtype)
    rep = dry_run(p)
    # weights of the trained model and of the local judge, plus training activations
    assert rep.memory_bytes > 2 * fp.weight_bytes
    assert rep.seconds and rep.seconds > 0
    text = "\n".join(rep.lines)
    assert "rough time on cpu: training" in text and "judge" in text
    # reflections are extra work: more time; an not counted: the API judge and says so
    assert (
        dry_run(demo(model=str(tiny_dir), judge_model=str(tiny_dir), with_reflection=True)).seconds
        > rep.seconds
    )
    api = dry_run(demo(model=str(tiny_dir), judge="together", judge_model="some/judge"))
    assert api.seconds < rep.seconds and "not counted: the API judge" in "\n".join(api.lines)


def test_a_model_without_an_offline_config_is_not_estimated() -> None:
    rep = dry_run(demo(model="nobody/no-such-model-here", judge_model="nobody/no-such-model-here"))
    assert rep.memory_bytes is None and rep.seconds is None
    assert any("not estimated" in line for line in rep.lines)
