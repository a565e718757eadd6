"""4-bit loading packs linear weights: a sweep that would degrade them is refused up front."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from labdeck.backend.kinds.degradation.config import Params


@pytest.mark.parametrize("groups", [["attention"], ["mlp", "embedding"], ["all"]])
def test_load_4bit_with_linear_groups_is_refused_at_validation(groups):
    with pytest.raises(ValidationError, match="load_4bit=true packs the linear weights"):
        Params(load_4bit=True, param_groups=groups)
    assert Params(load_4bit=True, param_groups=["embedding"]).load_4bit


def test_the_command_line_refuses_it_in_one_line_before_creating_anything(results_dir: Path, lab):
    p = lab("run", "--kind", "degradation", "--set", "load_4bit=true", "--quiet")
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("labdeck: error:")
    assert "load_4bit=true packs the linear weights of attention, mlp" in lines[0]
    assert "param_groups=['embedding']" in lines[0]
    assert list(results_dir.iterdir()) == []
