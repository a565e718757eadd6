"""`labdeck run … --dry-run`: groups with parameter counts, units, memory and time, no generation."""

from __future__ import annotations

import json
from pathlib import Path

from labdeck.backend import cli
from labdeck.backend.kinds.degradation.config import Params
from labdeck.backend.kinds.degradation.experiment import dry_run
from tests.degradation.conftest import build_tiny, tiny_gemma3_config

REPO = Path(__file__).resolve().parents[2]


def test_dry_run_of_an_image_text_model_from_its_config_alone(tmp_path, results_dir):
    folder = tmp_path / "tiny-gemma3"
    tiny_gemma3_config().save_pretrained(folder)  # config.json only: no weights to load
    params = Params(
        model=str(folder),
        param_groups=["attention", "mlp", "embedding"],
        levels=[0.0, 0.1, 0.2],
        n_rep=2,
        max_batch_size=16,
        prompts={"set": "iq"},
    )
    report = dry_run(params)
    assert report.units == 3 * 3 * 2 * 65
    text = "\n".join(report.lines)
    real = build_tiny("gemma3-image-text")
    from labdeck.backend.kinds.degradation.groups import discover_groups

    mg = discover_groups(real)
    assert f"{mg.groups['attention'].numel:,} parameters" in text
    assert "model.language_model.layers" in text
    assert "tied" in text and "lm_head" in text
    assert "batch starts at 16" in text
    assert report.memory_bytes and report.memory_bytes > 0 and report.seconds and report.seconds > 0
    assert not any(results_dir.iterdir()), "a dry run creates no run directory"


def test_cli_dry_run_of_the_demo_preset(capsys, results_dir):
    from labdeck.backend.models import ensure_embedded

    ensure_embedded()  # the estimate reads smollm2's config from the labdeck cache
    rc = cli.main(["run", str(REPO / "presets" / "degradation-demo.toml"), "--dry-run", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["units"] == 2 * 4 * 1 * 8
    lines = "\n".join(out["lines"])
    assert "group attention" in lines and "group mlp" in lines
    assert out["memory_bytes"] > 500 * 2**20  # smollm2 in float32 is ~513 MiB of weights
    assert not any(results_dir.iterdir())


def test_demo_estimate_agrees_with_its_measured_time():
    """The demo preset ran in 68 s (model load included) on 2 CPU cores; its description
    says about 70 s, and the estimate must be of that size, not twice it (it assumed a
    1024-token perplexity text; the shipped one is ~210 tokens)."""
    from pathlib import Path

    from labdeck.backend.kinds.degradation import estimate as est
    from labdeck.backend.presets import load_preset, resolve

    preset = load_preset(Path(__file__).resolve().parents[2] / "presets" / "degradation-demo.toml")
    p = resolve(preset.kind, preset.params).model
    # SmolLM2-135M's geometry, float32 weights
    fp = est.Footprint(134_515_008, 30, 3, 64, 4, "float32")
    seconds = est._seconds(p, fp, est.Hardware.for_device("cpu"), 45, 8, 8, 8)
    assert 50 <= seconds <= 80
    assert "70 s" in preset.description
