"""labdeck on a CUDA GPU, every check in one call; writes docs/gpu.md with the figures.

Checks (each a function with its share of --budget; `--only NAME` runs one):
  nvml              the dashboard strip's NVML figures (backend/gpu.py) vs `nvidia-smi
                    --query-gpu` at the same moment (goal within 1 %); per-process memory
                    of this process and a second one vs `nvidia-smi --query-compute-apps`
  adaptive_batch    a real degradation run (`labdeck run --kind degradation`) on a random
                    1.1 B Llama-style bf16 model, long sampled generations, max_batch_size
                    large, under a fixed memory ballast: batch trajectory, OOMs, settled
                    size vs the largest feasible batch found by bisection (goal >= 90 %),
                    units lost (goal 0), throughput vs bare `generate` with the same
                    per-row sampling at the best fixed batch (goal >= 0.90)
  second_process    another process takes the device's free memory mid-run and gives it
                    back: the controller shrinks, grows back, loses nothing
  nf4               bitsandbytes NF4 loading of the embedded and the random model: loads,
                    generates; degradation of packed groups refused clearly, of embeddings
                    applied (real runs); em's QLoRA path trains a few steps
  training          LoRA training time of the em and feedback trainer vs a bare peft loop,
                    kt's trainer vs a bare PyTorch loop (goal <= 1.05x); a kt run and its
                    `labdeck reproduce`: metric differences (goal <= 1e-3)
  per_row_sampling  the same record's sampled text at batch 1, 4 and 16 (goal identical)
  vllm              only where `vllm` imports: a degradation level (perturb in place,
                    generate, restore) through vLLM with weights loaded in place by
                    collective_rpc vs labdeck's HF path; ratio and level-0 agreement
                    (its wheels are too large to carry to a machine without network)
  dashboard         the dashboard on the adaptive_batch run: the GPU strip and the
                    Monitor's memory and batch views saved as PNG
  batch_bisection   (CPU stand-in) the batch controller over a simulated device: settled
                    size vs bisection, units lost; checks the bisection code itself

Without CUDA the GPU checks print `NAME: skipped (no CUDA device)`; per_row_sampling runs
on a tiny random model and batch_bisection on its simulated device, and the exit status
is 0 unless the script itself breaks (a failing check prints `NAME: error ...` and the
others still run). The report is written to --out: by default docs/gpu.md on a CUDA
machine and nowhere on a CPU one, so a rehearsal never replaces the GPU figures; a report
written from a CPU run says so in its title.

On the GPU machine (no network): scripts/gpu-carry.sh prepares .whl/ (labdeck's
dependencies the image lacks, bitsandbytes included) and .cache-carry/ (the embedded
model's config and tokenizer; its weights do not fit what travels, so there the embedded
model is its architecture with random weights), and its header holds the one device
command (timeout_s 540: about 9 of a 15-minute allowance, room for a short --only rerun).
Usage: python bench/bench_gpu.py [--budget 480] [--only NAME ...] [--out PATH] [--screenshots DIR]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gpu_common import CHECKS, REPO, Env, Line, Skip, ensure_labdeck_importable, first_line

ensure_labdeck_importable()
# Built for a machine without network: nothing here needs the Hub, so never wait on it.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import gpu_memory  # noqa: E402,F401  (registers nvml, adaptive_batch, second_process, batch_bisection)
import gpu_models  # noqa: E402,F401  (registers nf4, per_row_sampling, vllm)
import gpu_training  # noqa: E402,F401  (registers training)
import gpu_views  # noqa: E402,F401  (registers dashboard)

ORDER = (
    "nvml",
    "per_row_sampling",
    "batch_bisection",
    "adaptive_batch",
    "dashboard",
    "second_process",
    "nf4",
    "training",
    "vllm",
)


def device() -> tuple[bool, str, str]:
    import torch

    if torch.cuda.is_available():
        return True, "cuda:0", torch.cuda.get_device_name(0)
    return False, "cpu", f"CPU ({platform.processor() or platform.machine()}), no CUDA device"


def run_checks(
    env: Env, names: list[str], budget: float, after: Callable[[], None] = lambda: None
) -> None:
    """Every named check in turn, each within its share of `budget`; a failure is one line.

    The shares steer how much work a check takes on; a check that overruns is not cut
    short. `after()` runs after each check (the report is rewritten, so a device call
    stopped at its time limit still leaves the figures of the checks that finished)."""
    selected = [CHECKS[n] for n in names]
    shares = sum(c.share for c in selected) or 1.0
    for c in selected:
        if c.cuda and not env.cuda:
            env.emit(c.name, "skipped (no CUDA device)", status="skipped")
            continue
        seconds = budget * c.share / shares
        env.deadline = time.monotonic() + seconds
        t0 = time.monotonic()
        try:
            c.fn(env)
        except Skip as exc:
            env.emit(c.name, f"skipped ({exc})", status="skipped")
        except Exception as exc:
            env.emit(c.name, f"error {first_line(exc)}", status="error")
        finally:
            if env.cuda:
                import torch

                torch.cuda.empty_cache()
        spent = time.monotonic() - t0
        print(f"  [{c.name}: {spent:.0f} s of {seconds:.0f} s]", flush=True)
        after()


def report(env: Env, names: list[str], started: datetime, seconds: float) -> str:
    """docs/gpu.md: device, date, software and every figure, grouped by check."""
    import torch
    import transformers

    title = "labdeck on a GPU" if env.cuda else "labdeck GPU checks: CPU rehearsal (no GPU figures)"
    out = [
        f"# {title}",
        "",
        f"- device: {env.device_name}",
        f"- date: {started:%Y-%m-%d %H:%M} UTC; {seconds:.0f} s in all",
        f"- software: Python {platform.python_version()}, torch {torch.__version__}, "
        f"transformers {transformers.__version__}",
        "- produced by `python bench/bench_gpu.py` (its docstring says what each check does)",
        "",
    ]
    for name in names:
        c = CHECKS[name]
        lines: list[Line] = [ln for ln in env.lines if ln.name.split(".")[0] == name]
        out += [f"## {name}", "", c.what, "", "```"]
        out += [ln.text() for ln in lines] or [f"{name}: (no output)"]
        out += ["```", ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=480.0, help="seconds for all checks")
    ap.add_argument(
        "--only", action="append", choices=ORDER, metavar="NAME", help="run only this check"
    )
    ap.add_argument(
        "--out", type=Path, help="report path (default: docs/gpu.md with CUDA, none without)"
    )
    ap.add_argument(
        "--screenshots", type=Path, help="PNG folder (default: docs/screenshots beside --out)"
    )
    args = ap.parse_args(argv)
    names = [n for n in ORDER if n in (args.only or ORDER)]
    cuda, dev, dev_name = device()
    if not cuda:
        import torch

        torch.set_num_threads(1)  # the stand-ins are small; shared CPUs spin-wait with more
    out = args.out or (REPO / "docs" / "gpu.md" if cuda else None)
    shots = args.screenshots or (out.parent / "screenshots" if out else Path(tempfile.gettempdir()))
    started = datetime.now(UTC)
    t0 = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="labdeck-gpu-"))
    print(f"device: {dev_name}; checks: {', '.join(names)}; budget {args.budget:.0f} s", flush=True)
    env = Env(cuda=cuda, device=dev, device_name=dev_name, tmp=tmp, screenshots=shots)

    def write_report() -> None:
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            text = report(env, names, started, time.monotonic() - t0)
            out.write_text(text + "\n", encoding="utf-8")

    try:
        run_checks(env, names, args.budget, after=write_report)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    seconds = time.monotonic() - t0
    if out is not None:
        print(f"report: {out}")
    errors = sum(ln.status == "error" for ln in env.lines)
    print(f"done in {seconds:.0f} s: {errors} check(s) with errors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
