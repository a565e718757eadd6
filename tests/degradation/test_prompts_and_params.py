"""Shipped prompt sets, user prompt files, and parameter validation."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from pydantic import ValidationError

from labdeck.backend.errors import UserError
from labdeck.backend.kinds.degradation.config import Params
from labdeck.backend.kinds.degradation.promptsets import load_prompt_set, shipped_perplexity_text


def test_shipped_sets_have_the_seed_sizes():
    assert len(load_prompt_set("dreams")) == 38
    iq = load_prompt_set("iq")
    assert len(iq) == 65
    assert Counter(p.category for p in iq.prompts) == {
        c: 13 for c in ("math", "language", "logic", "factual", "creativity")
    }
    assert len(load_prompt_set("picture")) == 20
    assert [p.id for p in iq.prompts] == list(range(65))
    assert len(shipped_perplexity_text().split()) > 100


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("p.txt", "# my prompts\nFirst question?\n\nSecond question?\n"),
        ("p.json", json.dumps(["First question?", {"text": "Second question?", "category": "x"}])),
        ("p.toml", 'prompts = ["First question?", "Second question?"]\n'),
        (
            "q.toml",
            '[[prompts]]\ntext = "First question?"\n[[prompts]]\ntext = "Second question?"\n',
        ),
    ],
)
def test_user_prompt_files(tmp_path, name, text):
    f = tmp_path / name
    f.write_text(text)
    ps = load_prompt_set(str(f))
    assert [p.text for p in ps.prompts] == ["First question?", "Second question?"]
    assert Params(prompts={"set": str(f)}).prompts.set == str(f)


def test_prompt_file_problems_name_the_file(tmp_path):
    dup = tmp_path / "dup.txt"
    dup.write_text("Same?\nOther?\nSame?\n")
    with pytest.raises(UserError, match=r"dup.txt: prompt #2 repeats prompt #0"):
        load_prompt_set(str(dup))
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(UserError, match=r"bad.json: prompt #0 must be a string"):
        load_prompt_set(str(bad))
    broken = tmp_path / "broken.toml"
    broken.write_text("prompts = [")
    with pytest.raises(UserError, match=r"broken.toml: malformed TOML"):
        load_prompt_set(str(broken))


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ({"method": "ablation", "levels": [0.0, 1.5]}, "ablation levels are fractions"),
        ({"method": "uni_quant", "uni_quant_mode": "bits", "levels": [0, 2.5]}, "whole numbers"),
        ({"levels": [0.1, 0.1]}, "appears twice"),
        ({"levels": [-0.1]}, "must be >= 0"),
        ({"param_groups": ["attention", "heads"]}, "param_groups"),
        ({"prompts": {"set": "iqq"}}, "neither a shipped set"),
        ({"layer_start": 3, "layer_end": 1}, "before layer_start"),
        ({"memory": {"grow_below": 0.95}}, "grow_below < pause_above"),
        ({"generation": {"beams": 2}}, "beams"),
    ],
)
def test_bad_params_are_refused_with_the_reason(override, fragment):
    with pytest.raises(ValidationError, match=fragment):
        Params(**override)


@pytest.mark.parametrize(
    ("sets", "fragment"),
    [
        (
            ["prompts.set=nowhere.txt"],
            r"--set prompts.set: params.prompts.set: nowhere.txt: no such file",
        ),
        (
            ["image.path=nowhere.png"],
            r"--set image.path: params.image.path: nowhere.png: no such file",
        ),
    ],
)
def test_missing_input_files_are_refused_at_validation(sets, fragment):
    from labdeck.backend.presets import resolve

    with pytest.raises(UserError, match=fragment):
        resolve("degradation", {}, sets)


def test_config_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, labdeck.backend.kinds.degradation.config as c; c.Params(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
