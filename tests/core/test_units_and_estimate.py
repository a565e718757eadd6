"""One byte/duration formatter (backend/units.py) and one memory/time estimator
(backend/estimate.py), used by the command line, the dashboard and every kind's dry run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from tiny_models import TINY_TEXT

from labdeck.backend.display import fmt_bytes, fmt_duration
from labdeck.backend.estimate import Footprint, Hardware, footprint, generation_seconds
from labdeck.backend.units import format_bytes, format_duration
from labdeck.tui import fmt


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1536, "1.5 KiB"),
        (5 * 2**30, "5.0 GiB"),
        (3 * 2**40, "3.0 TiB"),
        (2**50, "1024.0 TiB"),
        (-2048, "-2.0 KiB"),
        (None, "-"),
        (float("nan"), "-"),
    ],
)
def test_bytes_read_the_same_everywhere(n, text):
    assert format_bytes(n) == fmt_bytes(n) == text
    assert fmt.size(n) == ("—" if text == "-" else text)


@pytest.mark.parametrize(
    ("seconds", "clock", "compact"),
    [
        (0, "0:00", "0s"),
        (59.9, "0:59", "59s"),
        (185, "3:05", "3m05s"),
        (7500, "2:05:00", "2h05m"),
        (97200, "27:00:00", "1d03h"),
        (-5, "-", "0s"),
        (None, "-", "—"),
        (float("nan"), "-", "—"),
    ],
)
def test_durations_in_both_styles(seconds, clock, compact):
    assert format_duration(seconds) == fmt_duration(seconds) == clock
    assert fmt.duration(seconds) == compact
    assert format_duration(seconds, "compact", missing="—") == compact


def test_the_dashboard_formatter_stays_torch_free():
    code = "import sys, labdeck.tui.fmt; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.fixture
def tiny_config_dir(tmp_path: Path) -> Path:
    from transformers import LlamaConfig

    folder = tmp_path / "tiny-llama"
    LlamaConfig(**TINY_TEXT, tie_word_embeddings=True, dtype="bfloat16").save_pretrained(folder)
    return folder  # config.json only: nothing to load


def test_both_kinds_estimate_with_the_one_estimator(tiny_config_dir: Path):
    from labdeck.backend.kinds.degradation.config import Params as DegParams
    from labdeck.backend.kinds.degradation.estimate import estimate
    from labdeck.backend.kinds.smoke.config import Params as SmokeParams
    from labdeck.backend.kinds.smoke.experiment import dry_run as smoke_dry_run

    fp = footprint(str(tiny_config_dir))
    assert fp is not None and fp.dtype == "bfloat16" and fp.bytes_per_param == 2
    h, v = TINY_TEXT["hidden_size"], TINY_TEXT["vocab_size"]
    assert fp.params > h * v  # embeddings plus two blocks, tied head counted once
    assert (fp.layers, fp.kv_heads, fp.head_dim) == (2, 2, 8)

    smoke = smoke_dry_run(SmokeParams(model=str(tiny_config_dir), device_map="cpu"))
    seq = 48 + SmokeParams().max_new_tokens
    assert smoke.memory_bytes == fp.weight_bytes + fp.kv_cache_bytes(4, seq)
    cpu = Hardware.for_device("cpu")
    expected = generation_seconds(
        fp, cpu, prompts=6, batch=4, prompt_tokens=48, new_tokens=SmokeParams().max_new_tokens
    )
    assert smoke.seconds == pytest.approx(2.0 + expected, abs=0.05)

    deg = estimate(DegParams(model=str(tiny_config_dir), device="cpu", prompts={"limit": 4}))
    weights_line = next(line for line in deg.lines if line.startswith("memory on cpu"))
    assert f"weights {format_bytes(fp.weight_bytes)}" in weights_line
    assert deg.memory_bytes is not None and deg.memory_bytes > fp.weight_bytes


def test_roofline_is_bandwidth_bound_small_and_compute_bound_large():
    fp = Footprint(params=10**9, layers=2, kv_heads=2, head_dim=8, bytes_per_param=2, dtype="x")
    gpu = Hardware.for_device("cuda:0")
    one = generation_seconds(fp, gpu, prompts=1, batch=1, prompt_tokens=1, new_tokens=100)
    assert one == pytest.approx(100 * fp.weight_bytes / gpu.bandwidth, rel=0.01)
    big = generation_seconds(fp, gpu, prompts=4096, batch=4096, prompt_tokens=1, new_tokens=1)
    assert big == pytest.approx(2 * 2 * fp.params * 4096 / gpu.flops, rel=0.01)


def test_footprint_is_cached_by_config_content(tiny_config_dir: Path, tmp_path, monkeypatch):
    """A second dry run of the same config builds no meta model (no torch import)."""
    from labdeck.backend import estimate as est

    monkeypatch.setenv("LABDECK_CACHE", str(tmp_path / "cache"))
    first = est.footprint(str(tiny_config_dir), "float16", load_4bit=False)
    assert first is not None and (tmp_path / "cache" / est.FOOTPRINT_CACHE).is_file()

    def no_build(spec):
        raise AssertionError("the cached geometry was not used")

    monkeypatch.setattr(est, "meta_model", no_build)
    assert est.footprint(str(tiny_config_dir), "float16") == first
    four_bit = est.footprint(str(tiny_config_dir), "auto", load_4bit=True)
    assert four_bit.bytes_per_param == 0.5 and four_bit.params == first.params
    # an edited config is another model: built again
    cfg = tiny_config_dir / "config.json"
    cfg.write_text(cfg.read_text().replace('"num_hidden_layers": 2', '"num_hidden_layers": 3'))
    with pytest.raises(AssertionError, match="cached geometry"):
        est.footprint(str(tiny_config_dir))


def test_legend_entries_are_packed_whole_onto_lines() -> None:
    from rich.text import Text

    from labdeck.tui.fmt import packed

    entries = [Text(w) for w in ("aaaa bbbb", "cc dd", "eeeeee ffff", "g")]
    lines = packed(entries, width=20).plain.split("\n")
    assert lines == ["aaaa bbbb  cc dd", "eeeeee ffff  g"]
    assert packed(entries, width=8).plain.split("\n") == [e.plain for e in entries]
