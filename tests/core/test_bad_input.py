"""Bad input of every kind is refused at validation: one line, exit 2, no run directory.

Each case here once ended in a traceback, a hang, a run that failed after its run
directory existed, or a "completed" run full of NaN.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from labdeck.backend.cli import main
from labdeck.backend.devices import cuda_device_count
from labdeck.backend.errors import MAX_MESSAGE, UserError
from labdeck.backend.presets import MAX_PRESET_BYTES, load_preset, parse_value, resolve

SMOKE = 'kind = "smoke"\n'


def one_line_error(fn, *args, **kw) -> str:
    with pytest.raises(UserError) as info:
        fn(*args, **kw)
    text = str(info.value)
    assert "\n" not in text and len(text) <= MAX_MESSAGE, text
    return text


def cli_refuses(argv: list[str], results: Path, capsys) -> str:
    """The real command line in-process: exit 2, a single `labdeck: error:` line, no run dir."""
    code = main([*argv, "--results", str(results)])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("labdeck: error: ") and "\n" not in err, err
    assert not results.exists() or not any(results.iterdir())
    return err


# --------------------------------------------------------------------------- preset files


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (SMOKE.encode("utf-16"), "UTF-16 text; save the preset as UTF-8"),
        (b'kind = "smoke"\n\x9f\x00\xff\xfe binary', "not UTF-8 text (byte 0x9f at offset 15)"),
        (b"kind = " + b"[" * 5000 + b"]" * 5000, "nesting too deep"),
        (b"kind = 1\nx = " + b"{a = " * 3000 + b"1" + b"}" * 3000, "nesting too deep"),
        (b"kind = 1" + b"9" * 5000, "malformed TOML: invalid value"),  # Python's int digit limit
        (b"[params]\nseed = 1\nseed = 2\n", "duplicate key 'params.seed' (line 3)"),
        (b"# x\n" * (MAX_PRESET_BYTES // 4 + 1), f"a preset is at most {MAX_PRESET_BYTES} bytes"),
    ],
    ids=["utf16", "binary", "deep-arrays", "deep-tables", "huge-int", "duplicate", "too-big"],
)
def test_unreadable_preset_files_are_one_line(tmp_path: Path, content: bytes, fragment: str):
    path = tmp_path / "p.toml"
    path.write_bytes(content)
    assert fragment in one_line_error(load_preset, path)


@pytest.mark.parametrize(
    ("target", "fragment"),
    [
        ("bin.bin", "bin.bin: not UTF-8 text"),
        ("/dev/zero", "/dev/zero: not a regular file (extended by"),
        ("fifo", "fifo: not a regular file (extended by"),
        (".", "not a regular file"),
        ("a\x00b", "'extends' must name a preset file"),
    ],
    ids=["binary", "dev-zero", "fifo", "folder", "nul"],
)
def test_extends_to_a_special_or_binary_file(tmp_path: Path, target: str, fragment: str):
    (tmp_path / "bin.bin").write_bytes(bytes(range(128, 256)))
    os.mkfifo(tmp_path / "fifo")  # opening it would block forever without a writer
    child = tmp_path / "child.toml"
    quoted = '"' + target.replace("\x00", "\\u0000") + '"'  # TOML basic string
    child.write_text(SMOKE + f"extends = {quoted}\n")
    assert fragment in one_line_error(load_preset, child)


def test_binary_preset_on_the_command_line(tmp_path: Path, capsys):
    path = tmp_path / "p.toml"
    path.write_bytes(SMOKE.encode("utf-16"))
    err = cli_refuses(["run", str(path), "--dry-run"], tmp_path / "results", capsys)
    assert "UTF-16" in err


# --------------------------------------------------------------------------- --set messages


@pytest.mark.parametrize(
    ("item", "fragment"),
    [
        ("seed=", '--set seed=: empty value; expected a TOML value (write seed="" for'),
        ("levels=[0.0,", "--set levels=[0.0,: malformed TOML value"),
        ('model="unterminated', '--set model="unterminated: malformed TOML value (Unterminated'),
        ("levels=" + "[" * 100 + "]" * 100, "--set levels=[[[[[["),
    ],
)
def test_set_errors_name_the_key(item: str, fragment: str):
    assert fragment in one_line_error(resolve, "degradation", {}, [item])


def test_set_values_are_blamed_on_the_set_not_the_preset(tmp_path: Path):
    preset = {"levels": [0.0, 0.1], "method": "mult_gauss"}
    msg = one_line_error(resolve, "degradation", preset, ["levels=[nan, 0.1]"], source="p.toml")
    assert msg.startswith("--set levels: params.levels: levels must be finite")
    # a check of the whole table that the --set reached: the --set is named, with the preset
    msg = one_line_error(
        resolve, "degradation", preset, ["memory.grow_below=0.99"], source="p.toml"
    )
    assert msg.startswith("--set memory.grow_below (with p.toml): params.memory: thresholds")
    msg = one_line_error(resolve, "degradation", preset, ["method=ablation", "levels=[0, 2]"])
    assert msg.startswith("--set levels, method (with params): params: ablation levels")
    # an input file named by --set
    msg = one_line_error(resolve, "smoke", {}, ["model=./nope"], source="p.toml")
    assert msg.startswith("--set model: params.model: ./nope: no such folder")
    # and a value from the preset itself is still the preset's
    msg = one_line_error(resolve, "degradation", {"levels": [float("nan")]}, source="p.toml")
    assert msg.startswith("p.toml: params.levels")


def test_echo_of_a_long_input_is_capped(tmp_path: Path, capsys):
    huge = "[" + ", ".join(["0.5"] * 200_000) + "]"  # 1 MB on one line
    assert len(huge) > 800_000
    msg = one_line_error(resolve, "degradation", {}, [f"levels={huge}"])
    assert "at most 1000 items" in msg and "(1000000 characters))" in msg and len(msg) < 400
    preset = tmp_path / "long.toml"
    preset.write_text('kind = "degradation"\n[params]\nlevels = ' + huge[:900_000] + "]\n")
    err = cli_refuses(["run", str(preset), "--dry-run"], tmp_path / "results", capsys)
    assert len(err) < 400


def test_parse_value_keeps_its_round_trip_forms():
    assert parse_value("abc") == "abc" and parse_value('["x", null]') == ["x", None]
    assert parse_value("null") is None and parse_value('""') == ""


# --------------------------------------------------------------------------- degradation levels


@pytest.mark.parametrize(
    ("sets", "fragment"),
    [
        (["levels=[nan, 0.1]"], "levels must be finite numbers (got nan)"),
        (["levels=[0, inf]"], "levels must be finite numbers (got inf)"),
        (["levels=[0, 1e308]"], "mult_gauss levels are in [0, 100] (got 1e+308)"),
        (["method=ablation", "levels=[0, 1.5]"], "ablation levels are fractions in [0, 1]"),
        (["method=uni_quant", "levels=[0, 1e308]"], "uni_quant levels are in [0, 1000]"),
        (["method=uni_quant", "uni_quant_mode=bits", "levels=[0, 64]"], "in 1..32 or 0"),
    ],
)
def test_levels_outside_the_method_range_are_refused(sets: list[str], fragment: str):
    assert fragment in one_line_error(resolve, "degradation", {}, sets)


# --------------------------------------------------------------------------- knowable inputs


@pytest.mark.parametrize("kind", ["smoke", "degradation"])
@pytest.mark.parametrize(
    "model", ["/no/such/model", "./nope", "~/no-such-model-here", "models/mine", "../x"]
)
def test_missing_local_model_paths_are_refused(kind, model, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()  # `models/mine` is a path here, not a hub id
    msg = one_line_error(resolve, kind, {}, [f"model={model!r}".replace("'", '"')])
    assert msg.endswith(f"{model}: no such folder")


@pytest.mark.parametrize("model", ["google/gemma-3-4b-it", "smollm2-135m", "gpt2"])
def test_hub_ids_and_the_embedded_alias_pass(model, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    resolved = resolve("smoke", {"model": model}, results=tmp_path)
    assert resolved.params["model"] == model


@pytest.mark.parametrize("bad", ["a\x07b", "org/name\n", "x\x1b[31m", "m\x00"])
def test_control_characters_in_a_model_name(bad):
    msg = one_line_error(resolve, "degradation", {"model": bad})
    assert "params.model: control character" in msg


@pytest.mark.parametrize(
    ("sets", "fragment"),
    [
        (["device=tpu"], "params.device: 'tpu': expected auto, cpu, cuda or cuda:N"),
        (["device=cuda:99"], "params.device: 'cuda:99'"),
    ],
)
def test_devices_this_machine_cannot_provide(sets, fragment):
    assert fragment in one_line_error(resolve, "degradation", {}, sets)


@pytest.mark.skipif(cuda_device_count() > 0, reason="this machine has a GPU")
@pytest.mark.parametrize(
    ("kind", "sets", "fragment"),
    [
        ("degradation", ["device=cuda:0"], "params.device: 'cuda:0' but no CUDA GPU is visible"),
        ("degradation", ["device=cuda"], "params.device: 'cuda' but no CUDA GPU is visible"),
        (
            "degradation",
            ["load_4bit=true", 'param_groups=["embedding"]'],
            "params.load_4bit: 4-bit loading needs a CUDA GPU",
        ),
        ("smoke", ["device_map=cuda"], "params.device_map: 'cuda' but no CUDA GPU"),
    ],
)
def test_cuda_without_a_gpu(kind, sets, fragment, tmp_path, capsys):
    assert fragment in one_line_error(resolve, kind, {}, sets)
    argv = ["run", "--kind", kind, *[a for s in sets for a in ("--set", s)]]
    cli_refuses(argv, tmp_path / "results", capsys)


def test_cuda_hidden_by_cuda_visible_devices(monkeypatch):
    """Whatever the machine, an empty CUDA_VISIBLE_DEVICES hides every GPU."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert cuda_device_count() == 0
    msg = one_line_error(resolve, "degradation", {"device": "cuda:0"})
    assert "no CUDA GPU is visible here (CUDA_VISIBLE_DEVICES='')" in msg


def test_validation_never_imports_torch(tmp_path: Path):
    import subprocess
    import sys

    code = (
        "import sys\nfrom labdeck.backend.presets import resolve\n"
        "from labdeck.backend.errors import UserError\n"
        "for kind, sets in [('degradation', ['device=cuda:0']), ('smoke', ['device_map=cuda'])]:\n"
        "    try: resolve(kind, {}, sets)\n"
        "    except UserError: pass\n"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("sets", "fragment"),
    [
        (["d_model=64", "n_heads=3"], "n_heads (3) must divide d_model (64)"),
        (["seed=18446744073709551616"], "params.seed: Input should be less than or equal"),
        (["seed=4294967296"], "params.seed: Input should be less than or equal to 4294967295"),
        (["sim_seed=99999999999999999999999"], "params.sim_seed"),
    ],
)
def test_kt_architecture_and_seeds(sets, fragment):
    assert fragment in one_line_error(resolve, "kt", {}, sets)


def _pykt(folder: Path, concepts: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "train_valid_sequences.csv").write_text(
        f'fold,uid,concepts,responses\n0,1,"1,2,3","1,0,1"\n1,2,"{concepts}","0,1,1"\n'
    )
    (folder / "test_sequences.csv").write_text('uid,concepts,responses\n3,"1,2,2","1,1,0"\n')
    return folder


@pytest.mark.parametrize(
    ("cell", "fragment"),
    [
        ("1,x,3", "got '1,x,3'"),
        ("", "got an empty cell"),
        ("1,2.5,3", "got '1,2.5,3'"),
        ("1,inf,3", "got '1,inf,3'"),
        ("1,1e40,3", "got '1,1e40,3'"),
    ],
)
def test_a_bad_pykt_cell_is_refused_at_validation_and_in_dry_run(cell, fragment, tmp_path, capsys):
    _pykt(tmp_path / "data" / "d", cell)
    sets = ["dataset=d", f"data_dir={str(tmp_path / 'data')!r}".replace("'", '"')]
    msg = one_line_error(resolve, "kt", {}, sets)
    assert "train_valid_sequences.csv: row 3, column 'concepts': expected comma-separated" in msg
    assert fragment in msg
    argv = ["run", "--kind", "kt", *[a for s in sets for a in ("--set", s)], "--dry-run"]
    assert fragment in cli_refuses(argv, tmp_path / "results", capsys)


def test_a_good_pykt_folder_passes(tmp_path: Path):
    _pykt(tmp_path / "data" / "d", "4,5,6")
    resolved = resolve("kt", {"dataset": "d", "data_dir": str(tmp_path / "data")})
    assert resolved.params["dataset"] == "d"


def test_missing_model_through_the_real_command_line(lab, tmp_path: Path):
    """One real subprocess: a missing local model is exit 2 before any run directory."""
    results = tmp_path / "results"
    proc = lab(
        "run", "--kind", "smoke", "--set", "model=./no/such/model", "--results", str(results)
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == (
        "labdeck: error: --set model: params.model: ./no/such/model: no such folder"
    )
    assert not results.exists() or not any(results.iterdir())
