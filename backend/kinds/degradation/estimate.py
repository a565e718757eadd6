"""`labdeck run … --dry-run`: groups, work units, memory and time, before loading any weight.

Sizes and times come from the shared estimator (backend/estimate.py: the model on the
meta device, a roofline for time); this module adds what only a sweep knows: its
prompt set, its parameter groups (same discovery code as the run, so the groups and
sizes shown are the ones the run will use), its passes and the restore snapshot.
"""

from __future__ import annotations

import math

from ...estimate import (
    Footprint,
    Hardware,
    auto_device,
    forward_seconds,
    generation_seconds,
    meta_model,
)
from ...kinds.base import DryRun
from ...units import format_bytes, format_duration
from .config import Params
from .groups import ModelGroups, discover_groups
from .promptsets import PromptSet, load_prompt_set, shipped_perplexity_text

CHAT_TEMPLATE_TOKENS = 24  # role markers and the assistant cue around a user message
IMAGE_TOKENS = 256  # Gemma 3's soft tokens per image
CHARS_PER_TOKEN = 4.0
PERPLEXITY_TOKENS = 1024  # the shipped reference text, about


def prompt_tokens(prompts: PromptSet, max_seq_length: int, image: bool) -> int:
    """Padded prompt length of a batch: its longest prompt (a batch pads to that)."""
    longest = max(len(p.text) for p in prompts.prompts)
    n = math.ceil(longest / CHARS_PER_TOKEN) + CHAT_TEMPLATE_TOKENS
    return n + IMAGE_TOKENS if image else min(n, max_seq_length)


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
    device = auto_device() if p.device == "auto" else p.device
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

    fp = Footprint.of(model, p.dtype, p.load_4bit)
    prompt_len = prompt_tokens(prompts, p.generation.max_seq_length, p.image.enabled)
    seq = prompt_len + p.generation.max_new_tokens
    kv = fp.kv_cache_bytes(batch, seq)
    subset_n = sum(t.numel() for _, t in mg.union(p.param_groups))
    lines.append(
        f"memory on {device}: weights {format_bytes(fp.weight_bytes)} + KV cache {format_bytes(kv)} "
        f"(batch {batch} × {seq} tokens) = {format_bytes(fp.weight_bytes + kv)}; "
        f"restore snapshot {format_bytes(subset_n * fp.bytes_per_param)} in host memory"
    )
    seconds = _seconds(p, fp, Hardware.for_device(device), prompt_len, batch, n, passes)
    lines.append(
        f"time: ~{format_duration(seconds, 'compact')} (rough roofline estimate for {device})"
    )
    return DryRun(units=units, memory_bytes=int(fp.weight_bytes + kv), seconds=seconds, lines=lines)


def _seconds(
    p: Params, fp: Footprint, hw: Hardware, prompt_len: int, batch: int, n: int, passes: int
) -> float:
    """Every pass answers all prompts; perplexity adds one forward pass per (group, level)."""
    per_pass = generation_seconds(
        fp,
        hw,
        prompts=n,
        batch=batch,
        prompt_tokens=prompt_len,
        new_tokens=p.generation.max_new_tokens,
    )
    if p.compute_perplexity:
        # one forward pass over the reference text (its real length, at most 1024 tokens:
        # assuming 1024 overestimated the demo's 68 s as 2 minutes)
        text = p.perplexity_text or shipped_perplexity_text()
        ppl_tokens = min(PERPLEXITY_TOKENS, math.ceil(len(text) / CHARS_PER_TOKEN))
        per_pass += forward_seconds(fp, hw, ppl_tokens) / max(p.n_rep, 1)
    return passes * per_pass
