"""bench_gpu checks of model paths: per-row sampling across batch sizes, bitsandbytes NF4
(loading, generation, degradation, em's QLoRA), and vLLM against labdeck's HF path."""

from __future__ import annotations

import time
from typing import Any

from gpu_common import (
    REPO,
    Env,
    GiB,
    Skip,
    check,
    embedded_model,
    events,
    finish,
    first_line,
    random_llama,
    records,
    run_dirs,
    start_run,
    tiny_llama,
)

SAMPLING_PROMPTS = [
    "Hi.",
    "Name a colour.",
    "Describe a dream about a lighthouse in two sentences.",
    "What is the capital of France, and why is it famous?",
    "Write one line of a poem about rain on a tin roof at night.",
    "List three fruits.",
    "Explain in simple words what a transformer language model does when it answers.",
    "Count to five.",
    "Tell me a short story about a fox who learns to read, in a single paragraph please.",
    "Why is the sky blue?",
    "Give me a recipe idea.",
    "What would you pack for a week of hiking in the mountains in autumn?",
    "Say something kind.",
    "How do bees make honey?",
    "Describe the smell of a bakery early in the morning.",
    "Ok.",
]


def _sampled_texts(
    model: Any, tok: Any, sizes: tuple[int, ...], tokens: int
) -> dict[int, list[str]]:
    from labdeck.backend.batching import BatchController
    from labdeck.backend.generation import GenParams, generate

    gen = GenParams(max_new_tokens=tokens, do_sample=True, temperature=1.0, top_k=64, top_p=0.95)
    keys = [f"record-{i}" for i in range(len(SAMPLING_PROMPTS))]
    return {
        b: [
            g.text
            for g in generate(
                model,
                tok,
                SAMPLING_PROMPTS,
                gen,
                controller=BatchController(b, b),
                seed=42,
                keys=keys,
            )
        ]
        for b in sizes
    }


@check("per_row_sampling", 0.05, cuda=False)
def per_row_sampling(env: Env) -> None:
    """Per-row sampling: the same record's text at batch 1, 4 and 16 (goal identical)."""
    from labdeck.backend.models import load_model

    models = (
        [("embedded", embedded_model(env), "auto"), ("llama", random_llama(env), "bfloat16")]
        if env.cuda
        else [("tiny", tiny_llama(env), "float32")]
    )
    n = len(SAMPLING_PROMPTS)
    for short, (spec, label), dtype in models:
        model, tok = load_model(str(spec), dtype=dtype, device_map=env.device if env.cuda else None)
        texts = _sampled_texts(model, tok, (1, 4, 16), 32 if env.cuda else 8)
        del model
        same = {b: sum(a == t for a, t in zip(texts[1], texts[b], strict=True)) for b in (4, 16)}
        env.emit(
            f"per_row_sampling.{short}",
            f"batch 4: {same[4]}/{n}, batch 16: {same[16]}/{n} identical to batch 1 ({label}, {dtype})",
            f"{n}/{n}",
            status="value" if same[4] == same[16] == n else "error",
        )


# --------------------------------------------------------------------------- NF4


def _tiny_sweep(model: str, groups: list[str]) -> dict[str, Any]:
    return {
        "model": model,
        "load_4bit": True,
        "device": "cuda:0",
        "param_groups": groups,
        "levels": [0.0, 0.05],
        "prompts.limit": 4,
        "generation.max_new_tokens": 16,
    }


@check("nf4", 0.14)
def nf4(env: Env) -> None:
    """bitsandbytes NF4: load and generate, degradation applied or refused, em's QLoRA trains."""
    try:
        import bitsandbytes  # noqa: F401
    except Exception as exc:
        raise Skip(f"bitsandbytes not importable: {first_line(exc)}") from None
    import torch

    from labdeck.backend.batching import BatchController
    from labdeck.backend.generation import GenParams, generate
    from labdeck.backend.models import load_model

    embedded, embedded_label = embedded_model(env)
    llama, llama_label = random_llama(env)
    for short, spec, label in (
        ("embedded", embedded, embedded_label),
        ("llama", str(llama), llama_label),
    ):
        torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        model, tok = load_model(spec, load_4bit=True)
        loaded = time.perf_counter() - t0
        gens = generate(
            model, tok, SAMPLING_PROMPTS[:8], GenParams(max_new_tokens=24, do_sample=True),
            controller=BatchController(8, 8), seed=0, keys=[str(i) for i in range(8)],
        )  # fmt: skip
        env.emit(
            f"nf4.{short}",
            f"{label}: loaded in {loaded:.1f} s, {torch.cuda.memory_allocated() / GiB:.2f} GiB; "
            f"8 answers, {sum(g.tokens_out for g in gens)} tokens",
            "loads and generates",
        )
        del model
        torch.cuda.empty_cache()

    results = env.tmp / "results-nf4"
    results.mkdir(exist_ok=True)
    sweep = _tiny_sweep(str(llama), ["embedding"])
    proc = start_run(results, sweep, kind="degradation", title="nf4-embedding")
    finish(proc, max(120.0, env.left() * 0.4), "4-bit degradation of the embedding")
    recs = records(run_dirs(results)[-1])
    env.emit("nf4.degrade_embedding", f"{len(recs)} records of 8 (embeddings stay float)", "8")
    sweep = _tiny_sweep(str(llama), ["attention"])
    proc = start_run(results, sweep, kind="degradation", title="nf4-attention")
    out, _ = proc.communicate(timeout=max(30.0, env.left() * 0.2))
    lines = [ln.strip() for ln in out.splitlines() if "load_4bit" in ln]
    env.emit(
        "nf4.degrade_attention",
        f"refused (exit {proc.returncode}): {lines[0][:160]}"
        if proc.returncode and lines
        else f"exit {proc.returncode}, no message naming load_4bit",
        "refused with a message naming load_4bit",
        status="value" if proc.returncode and lines else "error",
    )

    em_sets = {
        "model": embedded, "load_4bit": True, "dtype": "bfloat16", "device_map": "cuda",
        "evaluate": False, "judge_model": embedded,
    }  # fmt: skip
    proc = start_run(results, em_sets, preset=REPO / "presets" / "em-demo.toml")
    finish(proc, max(120.0, env.left()), "em QLoRA run")
    run = run_dirs(results)[-1]
    losses = [e["value"] for e in events(run, "metric") if e.get("name") == "loss"]
    env.emit(
        "nf4.em_qlora",
        f"{len(losses)} steps, loss {losses[0]:.3f} → {losses[-1]:.3f}"
        if losses
        else "no loss metric in events",
        "trains (finite losses)",
        status="value" if losses and all(v == v for v in losses) else "error",
    )


# --------------------------------------------------------------------------- vLLM


@check("vllm", 0.08)
def vllm(env: Env) -> None:
    """vLLM (weights updated in place via collective_rpc) vs labdeck's HF path for one level."""
    try:
        import vllm as _vllm  # noqa: F401
    except Exception as exc:
        raise Skip(f"vllm not importable: {first_line(exc)}") from None
    import os

    import torch
    from vllm import LLM, SamplingParams

    from labdeck.backend.generation import GenParams, generate, render
    from labdeck.backend.kinds.degradation.groups import discover_groups
    from labdeck.backend.kinds.degradation.methods import degrade
    from labdeck.backend.kinds.degradation.restore import SubsetSnapshot
    from labdeck.backend.models import load_model

    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # the worker in this process
    folder, label = random_llama(env)
    prompts = SAMPLING_PROMPTS * 8
    tokens = 128
    model, tok = load_model(str(folder), dtype="bfloat16", device_map=env.device)
    groups = discover_groups(model)
    params = groups.groups["mlp"].params
    snapshot = SubsetSnapshot(params)
    gen = GenParams(max_new_tokens=tokens, do_sample=False, max_seq_length=512)

    def hf_level(level: float) -> tuple[float, list[str]]:
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        snapshot.restore()
        if level:
            snapshot.mark_dirty([n for n, _ in params])
            degrade(params, "mult_gauss", level, 42)
        texts = [g.text for g in generate(model, tok, prompts, gen)]
        snapshot.restore()
        torch.cuda.synchronize()
        return time.perf_counter() - t0, texts

    hf_level(0.0)  # warm-up
    hf_s, _ = hf_level(0.05)
    _, hf_clean = hf_level(0.0)
    clean = {n: p.detach().clone() for n, p in params}
    snapshot.mark_dirty([n for n, _ in params])
    degrade(params, "mult_gauss", 0.05, 42)
    degraded = {n: p.detach().clone() for n, p in params}  # the same level's weights for vLLM
    snapshot.restore()
    model.to("cpu")  # the HF side's device memory goes back before vLLM takes its share
    torch.cuda.empty_cache()

    llm = LLM(model=str(folder), dtype="bfloat16", gpu_memory_utilization=0.5, seed=0)
    rendered = [render(tok, p) for p in prompts]
    sp = SamplingParams(temperature=0.0, max_tokens=tokens)

    def load(weights: dict[str, Any]) -> None:
        items = list(weights.items())
        llm.collective_rpc(lambda worker: worker.model_runner.model.load_weights(items))

    def vllm_level(weights: dict[str, Any] | None) -> tuple[float, list[str]]:
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        if weights is not None:
            load(weights)
        texts = [o.outputs[0].text.strip() for o in llm.generate(rendered, sp, use_tqdm=False)]
        if weights is not None:
            load(clean)
        torch.cuda.synchronize()
        return time.perf_counter() - t0, texts

    vllm_level(None)  # warm-up (graphs, cache)
    v_s, _ = vllm_level(degraded)
    _, v_clean = vllm_level(None)
    agree = sum(a == b for a, b in zip(hf_clean, v_clean, strict=True))
    env.emit(
        "vllm.level_seconds",
        f"HF {hf_s:.2f} s, vLLM {v_s:.2f} s: ratio {hf_s / v_s:.2f} ({label}, {len(prompts)} prompts, "
        f"{tokens} tokens, greedy)",
        ">= 3 to add an engine option",
    )
    env.emit("vllm.level0_agreement", f"{agree}/{len(prompts)} identical greedy texts", "all")
