"""The `smoke` kind: load a model, answer each prompt greedily, one record per prompt.

Each prompt is a work unit keyed by its position and text, so a stopped or killed run
resumes with exactly the prompts that have no record yet.
"""

from __future__ import annotations

from typing import Any

from ...batching import BatchController, BatchPolicy
from ...ledger import unit_key
from ..base import DryRun, RunContext
from .config import Params

_WARM_LOAD_SECONDS = 2.0
_COLD_LOAD_SECONDS = 60.0  # first use of the embedded model: download + GGUF conversion
_PROMPT_TOKENS = 48  # chat template + a short question


def _device_map(params: Params) -> str | None:
    return None if params.device_map == "none" else params.device_map


def _policy(params: Params) -> BatchPolicy:
    return BatchPolicy(
        params.grow_below, params.pause_above, params.shrink_above, params.pause_seconds
    )


def _gen_params(params: Params) -> Any:
    from ...generation import GenParams

    return GenParams(max_new_tokens=params.max_new_tokens, do_sample=False)


def units(params: Params) -> list[tuple[str, int, str]]:
    """(key, index, prompt) for every prompt, in order."""
    return [(unit_key("smoke", i, p), i, p) for i, p in enumerate(params.prompts)]


def _rates(records: list[dict[str, Any]]) -> dict[str, float]:
    """Throughput over every recorded answer (this session's and earlier ones').

    Each answer's share of its batch's wall time is seconds / batch_size, so the shares
    of one batch add up to that batch's time and no batch is counted twice.
    """
    tokens = sum(r["tokens_out"] for r in records)
    seconds = sum(r["seconds"] / r["batch_size"] for r in records)
    return {
        "tokens_per_s": round(tokens / seconds, 3) if seconds > 0 else 0.0,
        "mean_tokens": round(tokens / len(records), 3) if records else 0.0,
    }


def run(ctx: RunContext) -> dict[str, float]:
    import torch

    from ... import gpu
    from ...generation import iter_generate
    from ...models import load_model, model_device, model_info
    from ...seeding import set_all_seeds

    params: Params = ctx.params  # type: ignore[assignment]
    set_all_seeds(params.seed)
    all_units = units(params)
    todo = [u for u in all_units if not ctx.is_done(u[0])]
    ctx.phase("generate", total=len(all_units))
    done = len(all_units) - len(todo)
    ctx.progress(done)
    if todo:
        ctx.info(f"loading {params.model} ({params.dtype}, device_map={params.device_map})")
        model, tok = load_model(
            params.model,
            dtype=params.dtype,
            device_map=_device_map(params),
            load_4bit=params.load_4bit,
        )
        info = model_info(model)
        device = model_device(model)
        ctx.info(f"loaded {info.params / 1e6:.1f}M parameters, {info.dtype} on {info.device}")
        ctx.info(gpu.nvml_status())

        def on_change(size: int, reason: str) -> None:
            ctx.batch(size, reason)
            if reason == "pause":
                ctx.warn(
                    f"memory over {params.pause_above:.0%}: pausing {params.pause_seconds:g} s"
                )

        controller = BatchController(
            params.start_batch_size,
            params.max_batch_size,
            **gpu.batch_readings(device),
            on_change=on_change,
            policy=_policy(params),
        )
        gen = _gen_params(params)
        common = {
            "model": params.model,
            "dtype": info.dtype,
            "device": device,
            "load_4bit": params.load_4bit,
            "gen_params": gen.record(),
            "torch_threads": torch.get_num_threads(),
        }
        prompts = [p for _, _, p in todo]
        rates: dict[str, float] = {}
        keys = [key for key, _, _ in todo]  # sampling draws per record: key + seed
        batches = iter_generate(
            model, tok, prompts, gen, controller=controller, seed=params.seed, keys=keys
        )
        for batch in batches:
            for g in batch:
                key, index, prompt = todo[g.index]
                ctx.record(
                    key,
                    {
                        "index": index,
                        "prompt": prompt,
                        "output": g.text,
                        "tokens_in": g.tokens_in,
                        "tokens_out": g.tokens_out,
                        "batch_size": g.batch_size,
                        "seconds": g.seconds,
                        **common,
                    },
                )
            done += len(batch)
            ctx.progress(done)
            rates = _rates(ctx.ledger.records())
            for name, value in rates.items():
                ctx.metric(name, value, step=done)
            ctx.check_stop()
        return rates  # already emitted after the last batch
    final = _rates(ctx.ledger.records())  # everything was done before: report it once more
    for name, value in final.items():
        ctx.metric(name, value, step=done)
    return final


def dry_run(params: Params) -> DryRun:
    """Units, memory and time, from the model's config alone (no weights are loaded)."""
    from ...estimate import Hardware, device_for_map, footprint, generation_seconds, not_estimated
    from ...models import EMBEDDED, embedded_dir
    from ...units import format_bytes, format_duration

    n = len(params.prompts)
    lines = [
        f"{n} prompts, up to {params.max_new_tokens} new tokens each, batch {params.start_batch_size}→{params.max_batch_size}"
    ]
    fp = footprint(params.model, params.dtype, params.load_4bit)
    if fp is None:
        lines.append(not_estimated(params.model))
        return DryRun(units=n, lines=lines)
    seq = _PROMPT_TOKENS + params.max_new_tokens
    kv = fp.kv_cache_bytes(params.max_batch_size, seq)
    memory = fp.weight_bytes + kv
    device = device_for_map(params.device_map)
    load = _WARM_LOAD_SECONDS
    if params.model in EMBEDDED and not (embedded_dir(params.model) / "config.json").exists():
        load = _COLD_LOAD_SECONDS
    seconds = load + generation_seconds(
        fp,
        Hardware.for_device(device),
        prompts=n,
        batch=params.max_batch_size,
        prompt_tokens=_PROMPT_TOKENS,
        new_tokens=params.max_new_tokens,
    )
    lines += [
        f"{fp.params / 1e6:.1f}M parameters in {fp.dtype}: {format_bytes(fp.weight_bytes)} of weights",
        f"KV cache at batch {params.max_batch_size} × {seq} tokens: {format_bytes(kv)}",
        f"about {format_duration(seconds, 'compact')} on {device} "
        "(rough roofline estimate, model load included)",
    ]
    return DryRun(units=n, memory_bytes=memory, seconds=round(seconds, 1), lines=lines)
