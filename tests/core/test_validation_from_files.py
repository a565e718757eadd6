"""Everything a model's and an adapter's files can tell is checked at validation: exit 2,
one line naming the parameter, no run directory (not a failure minutes into the run)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labdeck.backend.cli import main
from labdeck.backend.kinds.model_files import module_names, num_layers

LLAMA = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "num_hidden_layers": 2}


@pytest.fixture
def model_folder(tmp_path: Path) -> Path:
    """A model folder as far as validation reads it: its config.json."""
    folder = tmp_path / "tiny-llama"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(LLAMA))
    return folder


def _refused(argv: list[str], results: Path, capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    (line,) = err.splitlines()
    assert list(results.iterdir()) == []
    return line


def test_em_model_that_is_a_device_is_refused(results_dir: Path, capsys) -> None:
    line = _refused(["run", "--kind", "em", "--set", "model=/dev/zero"], results_dir, capsys)
    assert "params.model: /dev/zero: a character device" in line


def test_em_model_folder_without_config_json(results_dir: Path, tmp_path: Path, capsys) -> None:
    line = _refused(["run", "--kind", "em", "--set", f"model={tmp_path}"], results_dir, capsys)
    assert "params.model" in line and "no config.json" in line


def test_em_persona_folder_without_adapter_config(
    results_dir: Path, tmp_path: Path, model_folder: Path, capsys
) -> None:
    empty = tmp_path / "adapter"
    empty.mkdir()
    argv = ["run", "--kind", "em", "--set", f"model={model_folder}", "--set", f"persona={empty}"]
    line = _refused(argv, results_dir, capsys)
    assert "params.persona" in line and "no adapter_config.json" in line


def test_em_target_modules_are_checked_against_the_architecture(
    results_dir: Path, model_folder: Path, capsys
) -> None:
    argv = ["run", "--kind", "em", "--set", f"model={model_folder}"]
    line = _refused([*argv, "--set", 'target_modules=["nope_proj"]'], results_dir, capsys)
    assert "params.target_modules: 'nope_proj' is no module of this llama model" in line
    assert "q_proj" in line
    ok = [*argv, "--set", 'target_modules=["down_proj", "all-linear"]', "--dry-run"]
    assert main(ok) == 0


def test_em_layers_are_checked_against_num_hidden_layers(
    results_dir: Path, model_folder: Path, capsys
) -> None:
    argv = ["run", "--kind", "em", "--set", f"model={model_folder}"]
    line = _refused([*argv, "--set", "activation_layers=[999]"], results_dir, capsys)
    assert "params.activation_layers: layer 999 does not exist; the model has 2 layers" in line
    assert main([*argv, "--set", "activation_layers=[0, 1]", "--dry-run"]) == 0


def test_em_dataset_that_is_a_device_says_what_it_is(results_dir: Path, capsys) -> None:
    line = _refused(["run", "--kind", "em", "--set", "dataset=/dev/zero"], results_dir, capsys)
    assert "/dev/zero: a character device, not a regular file" in line
    assert "no such file" not in line


def test_feedback_judge_that_names_nothing_is_refused(results_dir: Path, capsys) -> None:
    line = _refused(["run", "--kind", "feedback", "--set", 'judge="[red]x[/"'], results_dir, capsys)
    assert "params.judge: '[red]x[/'" in line and "not a hub id" in line
    line = _refused(["run", "--kind", "em", "--set", 'judge_model="[red]x[/"'], results_dir, capsys)
    assert "params.judge_model: '[red]x[/'" in line


def test_feedback_output_that_is_no_folder_is_refused(results_dir: Path, capsys) -> None:
    line = _refused(["run", "--kind", "feedback", "--set", "output=/dev/zero"], results_dir, capsys)
    assert "params.output: /dev/zero: a character device, not a folder" in line


def test_architecture_facts_from_config_json() -> None:
    assert num_layers(LLAMA) == 2
    assert num_layers({"text_config": {"num_hidden_layers": 34}}) == 34  # gemma3-style
    assert "down_proj" in (module_names(LLAMA) or ())
    assert module_names({"model_type": "something-new"}) is None  # unknown: not checked
