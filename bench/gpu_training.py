"""bench_gpu check of training: the LoRA trainer (em, feedback) and kt's trainer against bare
loops on the GPU (bench_em's and bench_kt's own sides, given a CUDA device), and a kt run
reproduced with `labdeck reproduce`."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path
from typing import Any

from gpu_common import (
    REPO,
    Env,
    check,
    embedded_files,
    embedded_model,
    finish,
    labdeck_cmd,
    run_dirs,
    start_run,
)

MEASUREMENTS = ("seconds", "_per_s", "_s", "memory_mb", "_mb")


def _lora(env: Env) -> None:
    from bench_em import alternate, bare_training, kind_training
    from transformers import AutoTokenizer

    from labdeck.backend.kinds.em.config import BUNDLED_DATASETS
    from labdeck.backend.training import LoraSpec, TrainSpec, encode_conversation, read_chat_jsonl

    spec, label = embedded_model(env)
    convs = read_chat_jsonl(BUNDLED_DATASETS["bad-advice"], limit=48)
    lora = LoraSpec(rank=8, alpha=16)
    tok = AutoTokenizer.from_pretrained(embedded_files(), local_files_only=True)
    results = env.tmp / "results-training"
    results.mkdir(exist_ok=True)
    for short, loss_on in (("em", "assistant"), ("feedback", "last_assistant")):
        ts = TrainSpec(
            learning_rate=1e-4, warmup_steps=1, effective_batch_size=8, micro_batch_size=4,
            max_seq_length=256, max_grad_norm=1.0, loss_on=loss_on,
        )  # fmt: skip
        tokens = sum(len(encode_conversation(tok, c, 256, loss_on).input_ids) for c in convs)
        kind_s, bare_s = alternate(
            2,
            lambda ts=ts: kind_training(spec, convs, ts, lora, results, env.device),
            lambda ts=ts: bare_training(spec, convs, ts, lora, results, env.device),
            best=min,
        )
        env.emit(
            f"training.{short}_lora",
            f"labdeck {kind_s:.2f} s ({tokens / kind_s:.0f} tokens/s), bare peft loop {bare_s:.2f} s "
            f"({tokens / bare_s:.0f} tokens/s): time ratio {kind_s / bare_s:.3f} "
            f"({label}, {len(convs)} examples, loss on {loss_on})",
            "<= 1.05",
        )


def _kt(env: Env) -> None:
    import torch
    from bench_kt import bench_overhead, demo_params

    from labdeck.backend.kinds.kt.data import load_data
    from labdeck.backend.kinds.kt.train import configure_determinism

    device = configure_determinism()
    try:
        p = demo_params()
        ratio = bench_overhead(p, load_data(p), device, rounds=2)
    finally:
        torch.use_deterministic_algorithms(False)
    env.emit(
        "training.kt",
        f"time ratio {ratio:.3f} labdeck trainer / bare PyTorch loop ({device})",
        "<= 1.05",
    )


def numeric_differences(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[float, str]]:
    """|a - b| of every outcome number two summaries share (times and memory left out)."""
    out = []
    for key in sorted(set(a) & set(b)):
        x, y = a[key], b[key]
        if key.endswith(MEASUREMENTS) or isinstance(x, bool) or not isinstance(x, int | float):
            continue
        if isinstance(y, int | float) and math.isfinite(x) and math.isfinite(y):
            out.append((abs(x - y), key))
    return sorted(out, reverse=True)


def _reproduction(env: Env, sets: dict[str, Any] | None = None) -> None:
    """kt-demo for a few epochs, `labdeck reproduce` of it, and the summaries compared."""
    sets = sets or {"epochs": 3}
    results = env.tmp / "results-repro"
    results.mkdir(exist_ok=True)
    proc = start_run(results, sets, preset=REPO / "presets" / "kt-demo.toml")
    finish(proc, max(120.0, env.left() * 0.45), "kt run")
    original = run_dirs(results)[-1]
    proc = subprocess.Popen(
        labdeck_cmd("reproduce", original.name, "--quiet", "--results", str(results)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    finish(proc, max(120.0, env.left()), "labdeck reproduce")
    repro = next(p for p in run_dirs(results) if p != original)

    def summary(run: Path) -> dict[str, Any]:
        data = json.loads((run / "artifacts" / "summary.json").read_text(encoding="utf-8"))
        return data["final_metrics"]

    diffs = numeric_differences(summary(original), summary(repro))
    worst = diffs[0] if diffs else (float("nan"), "none")
    env.emit(
        "training.reproduction",
        f"kt-demo ({sets}) and its reproduction: {len(diffs)} metrics, largest difference "
        f"{worst[0]:.2e} ({worst[1]})",
        "<= 1e-3",
        status="value" if diffs and worst[0] <= 1e-3 else "error",
    )


@check("training", 0.16)
def training(env: Env) -> None:
    """LoRA training (em, feedback) and kt's trainer vs bare loops; a kt run reproduced."""
    for part in (_lora, _kt, _reproduction):
        try:
            part(env)
        except Exception as exc:
            from gpu_common import first_line

            env.emit(
                f"training.{part.__name__.strip('_')}", f"error {first_line(exc)}", status="error"
            )
