"""bench/bench_gpu.py's CPU path, so the script a GPU machine runs in one call cannot rot:
the check registry and order, skip lines for the CUDA checks, the CPU stand-ins, the
report's title, one failing check not hiding the others, and exit status 0."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import bench_gpu  # noqa: E402
import gpu_common  # noqa: E402
import gpu_memory  # noqa: E402
import gpu_models  # noqa: E402

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU path")


def test_every_check_is_registered_in_the_run_order() -> None:
    assert set(bench_gpu.ORDER) == set(gpu_common.CHECKS)
    cpu_ones = {n for n, c in gpu_common.CHECKS.items() if not c.cuda}
    assert cpu_ones == {"per_row_sampling", "batch_bisection"}


def test_cpu_run_skips_cuda_checks_runs_stand_ins_and_writes_a_marked_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(env: gpu_common.Env) -> None:
        raise ValueError("a planted failure\nsecond line")

    failing = gpu_common.Check("per_row_sampling", broken, 0.05, False, "planted")
    monkeypatch.setitem(gpu_common.CHECKS, "per_row_sampling", failing)
    out = tmp_path / "gpu.md"
    argv = ["--budget", "60", "--out", str(out)]
    for name in ("nvml", "per_row_sampling", "batch_bisection", "adaptive_batch", "vllm"):
        argv += ["--only", name]
    assert bench_gpu.main(argv) == 0
    printed = capsys.readouterr().out
    assert "nvml: skipped (no CUDA device)" in printed
    assert "adaptive_batch: skipped (no CUDA device)" in printed
    assert "vllm: skipped (no CUDA device)" in printed
    assert "per_row_sampling: error ValueError: a planted failure\n" in printed
    assert "batch_bisection.units_lost: 0 (doubled 0) (goal 0)" in printed
    assert "batch_bisection.bisection: 104 in 9 probes; linear scan 104 (goal equal)" in printed
    assert "batch_bisection.pressure: shrank yes" in printed and "grew back yes" in printed
    report = out.read_text()
    assert report.startswith("# labdeck GPU checks: CPU rehearsal (no GPU figures)")
    assert "## batch_bisection" in report and "nvml: skipped (no CUDA device)" in report


def test_without_out_a_cpu_run_writes_no_report(monkeypatch: pytest.MonkeyPatch) -> None:
    written: list[Path] = []
    monkeypatch.setattr(Path, "write_text", lambda self, *a, **k: written.append(self))
    assert bench_gpu.main(["--only", "vllm"]) == 0
    assert written == []


@pytest.mark.parametrize(
    ("limit", "start"), [(104, 99), (104, 300), (1, 1), (0, 5), (1024, 512), (37, 1)]
)
def test_largest_feasible_matches_a_linear_scan(limit: int, start: int) -> None:
    found, probes = gpu_memory.largest_feasible(lambda n: n <= limit, start, ceiling=1024)
    assert found == min(limit, 1024)
    assert len(probes) <= 2 * 11


def test_per_row_sampling_gives_the_same_texts_at_batch_1_4_and_16(tiny) -> None:
    model, tok = tiny
    texts = gpu_models._sampled_texts(model, tok, (1, 4, 16), 6)
    assert texts[1] == texts[4] == texts[16]
    assert len(set(texts[1])) > 1  # sampled, not one repeated answer
