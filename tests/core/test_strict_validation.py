"""Validation is strict about types and blames the flag or file that gave a bad value:
a TOML bool is a bool, an int an int; a repeated `--grid` axis is an error; a huge grid
asks for `--yes`; `--launch`/`--launcher` errors name those flags. All before any run
directory exists, exit 2, one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from labdeck.backend.cli import main


def _one_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    (line,) = err.splitlines()
    assert line.startswith("labdeck: error: "), line
    return line


@pytest.mark.parametrize(
    ("kind", "item", "fragment"),
    [
        ("em", 'with_reflection="yes"', "--set with_reflection: params.with_reflection: Input should be a valid boolean"),
        ("degradation", 'generation.do_sample="yes"', "--set generation.do_sample: params.generation.do_sample: Input should be a valid boolean"),
        ("em", "epochs=true", "--set epochs: params.epochs: Input should be a valid integer (got True)"),
        ("kt", "epochs=2.5", "--set epochs: params.epochs: Input should be a valid integer"),
        ("counter", "units=true", "--set units: params.units: Input should be a valid integer"),
    ],
)  # fmt: skip
def test_loose_types_are_refused(results_dir: Path, capsys, kind, item, fragment) -> None:
    assert main(["run", "--kind", kind, "--set", item, "--dry-run"]) == 2
    assert fragment in _one_error(capsys)
    assert list(results_dir.iterdir()) == []


def test_a_preset_with_a_string_for_a_bool_is_blamed_on_the_preset(
    results_dir: Path, tmp_path: Path, capsys
) -> None:
    preset = tmp_path / "p.toml"
    preset.write_text('kind = "em"\n[params]\nwith_reflection = "yes"\n')
    assert main(["run", str(preset)]) == 2
    assert f"{preset}: params.with_reflection: Input should be a valid boolean" in _one_error(
        capsys
    )


def test_numbers_where_floats_are_expected_still_pass(results_dir: Path) -> None:
    assert main(["run", "--kind", "counter", "--set", "unit_seconds=0", "--dry-run"]) == 0


def test_a_repeated_grid_axis_is_an_error_saying_so(results_dir: Path, capsys) -> None:
    assert main(["run", "--kind", "counter", "--grid", "seed=1,2", "--grid", "seed=3"]) == 2
    line = _one_error(capsys)
    assert "--grid seed: given twice (seed=1,2 and seed=3)" in line and "seed=1,2,3" in line
    assert list(results_dir.iterdir()) == []


def test_a_grid_over_the_threshold_needs_yes(results_dir: Path, capsys) -> None:
    seeds = ",".join(str(i) for i in range(40))
    units = ",".join(str(i) for i in range(1, 31))
    argv = ["run", "--kind", "counter", "--grid", f"seed={seeds}", "--grid", f"units={units}"]
    assert main(argv) == 2
    line = _one_error(capsys)
    assert "1200 runs" in line and "--yes" in line
    assert list(results_dir.iterdir()) == []


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--launcher", ""], "--launcher: unknown launcher ''"),
        (["--launch", "concurrency=abc"], "--launch concurrency: launcher.concurrency:"),
        (["--launch", "concurrency=[1"], "--launch concurrency=[1: malformed TOML value"),
        (["--launch", "nope=1"], "--launch nope: launcher.nope:"),
        (["--grid", "units=true,2"], "--grid units: params.units: Input should be a valid integer"),
    ],
)
def test_launch_and_grid_errors_name_their_flag(results_dir: Path, capsys, argv, fragment) -> None:
    assert main(["run", "--kind", "counter", *argv, "--dry-run"]) == 2
    line = _one_error(capsys)
    assert fragment in line and "--set" not in line
    assert list(results_dir.iterdir()) == []


def test_a_preset_launcher_table_is_blamed_on_the_preset(
    results_dir: Path, tmp_path: Path, capsys
) -> None:
    preset = tmp_path / "p.toml"
    preset.write_text('kind = "counter"\n[launcher]\nconcurrency = "x"\n')
    assert main(["run", str(preset), "--launch", "processes=1", "--dry-run"]) == 2
    assert f"{preset}: launcher.concurrency" in _one_error(capsys)


def test_a_grid_point_that_breaks_a_cross_check_blames_the_grid_and_the_set(
    results_dir: Path, capsys
) -> None:
    argv = ["run", "--kind", "kt", "--set", "d_model=32", "--grid", "n_heads=2,5", "--dry-run"]
    assert main(argv) == 2
    line = _one_error(capsys)
    assert "--set d_model, --grid n_heads (with --kind kt): params: n_heads (5) must divide" in line
