"""`labdeck run … --dry-run`: groups, work units, memory and time, before loading any weight.

The model is built on the meta device from its config alone, so the groups and
their sizes shown are the ones the run will use (same discovery code), at no
memory cost. Memory is weights plus the KV cache of the starting batch; time
is a roofline guess (decoding reads every weight once per step, so it is
bandwidth-bound at small batches and compute-bound at large ones) and is
labelled as rough.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ...kinds.base import DryRun
from .config import Params
from .groups import ModelGroups, discover_groups
from .promptsets import PromptSet, load_prompt_set, shipped_perplexity_text

CHAT_TEMPLATE_TOKENS = 24  # role markers and the assistant cue around a user message
IMAGE_TOKENS = 256  # Gemma 3's soft tokens per image
CHARS_PER_TOKEN = 4.0


@dataclass(frozen=True)
class Hardware:
    """Effective (not peak) rates: a CPU core pair as measured with smollm2-135m; a datacentre GPU
    (H100-class) by its published bandwidth and bf16 throughput, derated by about half."""

    name: str
    bandwidth: float  # bytes/s actually achieved when streaming weights
    flops: float  # FLOP/s actually achieved by batched matmuls

    @classmethod
    def for_device(cls, device: str) -> Hardware:
        if device.startswith("cuda"):
            return cls("cuda", 1.2e12, 1.5e14)
        # Measured with one torch thread as well as two: on a shared 2-core machine one
        # thread is as fast (no OpenMP spin-waits), so cpu_threads does not scale it.
        return cls("cpu", 6e9, 3e10)


def _config_source(spec: str) -> str | None:
    from ...models import EMBEDDED, embedded_dir

    if spec in EMBEDDED:
        folder = embedded_dir(spec)
        return str(folder) if (folder / "config.json").is_file() else None
    return spec


def meta_model(spec: str) -> Any | None:
    """The model's module tree with no storage (None when its config is not reachable)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText

    source = _config_source(spec)
    if source is None:
        return None
    try:  # local only: a dry run must answer at once, never wait on Hub retries
        config = AutoConfig.from_pretrained(source, local_files_only=True)
    except (OSError, ValueError):
        return None
    cls = (
        AutoModelForImageTextToText
        if getattr(config, "vision_config", None)
        else AutoModelForCausalLM
    )
    try:
        with torch.device("meta"):
            return cls.from_config(config)
    except (ValueError, KeyError):
        return None


def prompt_tokens(prompts: PromptSet, max_seq_length: int, image: bool) -> int:
    """Padded prompt length of a batch: its longest prompt (a batch pads to that)."""
    longest = max(len(p.text) for p in prompts.prompts)
    n = math.ceil(longest / CHARS_PER_TOKEN) + CHAT_TEMPLATE_TOKENS
    return n + IMAGE_TOKENS if image else min(n, max_seq_length)


def _kv_bytes_per_token(model: Any, dtype_bytes: int) -> int:
    cfg = model.config.get_text_config()
    heads = int(cfg.num_attention_heads)
    kv = int(getattr(cfg, "num_key_value_heads", None) or heads)
    head_dim = int(getattr(cfg, "head_dim", None) or cfg.hidden_size // heads)
    return 2 * int(cfg.num_hidden_layers) * kv * head_dim * dtype_bytes


def _dtype_bytes(model: Any, dtype: str, load_4bit: bool) -> tuple[float, int]:
    """(bytes per weight, bytes per activation/KV value)."""
    if dtype == "auto":
        stored = str(getattr(model.config.get_text_config(), "dtype", None) or "float32")
        dtype = stored.removeprefix("torch.")
    act = 4 if dtype == "float32" else 2
    return (0.5 if load_4bit else act), act


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _group_lines(mg: ModelGroups, names: list[str]) -> list[str]:
    lines = []
    for name in names:
        g = mg.groups[name]
        note = f"  ({'; '.join(g.notes)})" if g.notes else ""
        lines.append(
            f"  group {name:<10} {len(g.params):>4} tensors {g.numel:>14,} parameters{note}"
        )
    return lines


def estimate(p: Params) -> DryRun:
    prompts = load_prompt_set(p.prompts.set, p.prompts.limit)
    n = len(prompts)
    passes = len(p.param_groups) * len(p.levels) * p.n_rep
    units = passes * n
    batch = min(n, p.max_batch_size)
    batches_per_pass = math.ceil(n / batch)
    lines = [
        f"model {p.model}, method {p.method}, levels {p.levels}, repeats {p.n_rep}",
        f"prompts: {n} from {prompts.source}; batch starts at {batch} "
        f"(min({n} prompts, max_batch_size {p.max_batch_size})), {batches_per_pass} batch(es) per pass",
        f"work units: {len(p.param_groups)} groups × {len(p.levels)} levels × {p.n_rep} repeats × {n} prompts "
        f"= {units} records ({passes} degrade+generate passes)",
    ]
    device = _auto_device() if p.device == "auto" else p.device
    model = meta_model(p.model)
    if model is None:
        lines.append(
            f"memory/time: no config for {p.model!r} in the local cache (download the model once); no estimate"
        )
        return DryRun(units=units, lines=lines)
    mg = discover_groups(model, p.layer_start, p.layer_end)
    lines.append(
        f"{type(model).__name__}: {mg.n_layers} decoder layers at {mg.layers_path}, "
        f"groups over layers {mg.layer_range[0]}..{mg.layer_range[1]}"
    )
    lines += _group_lines(mg, p.param_groups)

    weights_n = sum(t.numel() for t in model.parameters())
    w_bytes, act_bytes = _dtype_bytes(model, p.dtype, p.load_4bit)
    weight_mem = weights_n * w_bytes
    prompt_len = prompt_tokens(prompts, p.generation.max_seq_length, p.image.enabled)
    seq = prompt_len + p.generation.max_new_tokens
    kv = _kv_bytes_per_token(model, act_bytes) * batch * seq
    subset_n = sum(t.numel() for _, t in mg.union(p.param_groups))
    lines.append(
        f"memory on {device}: weights {_fmt_bytes(weight_mem)} + KV cache {_fmt_bytes(kv)} "
        f"(batch {batch} × {seq} tokens) = {_fmt_bytes(weight_mem + kv)}; "
        f"restore snapshot {_fmt_bytes(subset_n * w_bytes)} in host memory"
    )
    seconds = _seconds(
        p,
        Hardware.for_device(device),
        weights_n,
        weight_mem,
        prompt_len,
        batch,
        n,
        passes,
    )
    lines.append(f"time: ~{seconds / 60:.1f} min (rough roofline estimate for {device})")
    return DryRun(units=units, memory_bytes=int(weight_mem + kv), seconds=seconds, lines=lines)


def _auto_device() -> str:
    import torch

    return "cuda:0" if torch.cuda.is_available() else "cpu"


def _seconds(
    p: Params,
    hw: Hardware,
    n_params: int,
    weight_bytes: float,
    prompt_len: int,
    batch: int,
    n: int,
    passes: int,
) -> float:
    """Prefill (compute-bound) + decode steps (max of weight streaming and matmul time)."""
    total = 0.0
    remaining = n
    while remaining > 0:
        b = min(batch, remaining)
        prefill = 2 * n_params * b * prompt_len / hw.flops
        step = max(weight_bytes / hw.bandwidth, 2 * n_params * b / hw.flops)
        total += prefill + p.generation.max_new_tokens * step
        remaining -= b
    per_pass = total
    if p.compute_perplexity:
        # one forward pass over the reference text (its real length, at most 1024 tokens:
        # assuming 1024 overestimated the demo's 68 s as 2 minutes)
        text = p.perplexity_text or shipped_perplexity_text()
        ppl_tokens = min(1024, math.ceil(len(text) / CHARS_PER_TOKEN))
        per_pass += 2 * n_params * ppl_tokens / hw.flops / max(p.n_rep, 1)
    return passes * per_pass
