"""Entry points of the `degradation` kind: `run(ctx)` and `dry_run(params)`.

`run` loads the model once, finds its groups, snapshots the degradable subset
and hands everything to the sweep loop (sweep.py); a resume calls it again in
the same run directory and the loop skips what records.jsonl already holds.
"""

from __future__ import annotations

import csv
import time
from typing import Any

from ...errors import UserError
from ...jsonio import write_json_atomic
from ...kinds.base import DryRun, RunContext, StopRequested
from ...runs import ARTIFACTS, SUMMARY
from .config import Params
from .estimate import estimate
from .groups import ModelGroups, discover_groups, quantized_params
from .promptsets import load_prompt_set, shipped_perplexity_text
from .restore import SubsetSnapshot
from .sweep import Runtime, Sweep


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(
            f"device: {device!r} requested but no CUDA GPU is visible; use device=cpu or auto"
        )
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise UserError(f"device: {device!r}; expected auto, cpu, cuda or cuda:N")
    return "cuda:0" if device == "cuda" else device


def check_degradable(groups: ModelGroups, names: list[str], load_4bit: bool) -> None:
    """Packed 4-bit weights cannot be perturbed arithmetically: refuse with the fix."""
    for name in names:
        packed = quantized_params(groups.groups[name].params)
        if packed:
            hint = " (bitsandbytes packs linear layers; embeddings stay float)" if load_4bit else ""
            raise UserError(
                f"param_groups: group {name!r} holds quantized weights such as {packed[0]}{hint}; "
                "degrading needs float weights: set load_4bit=false or use param_groups=['embedding']"
            )


def _load(p: Params, device: str) -> tuple[Any, Any]:
    from ...models import load_model

    return load_model(
        p.model,
        dtype=p.dtype,
        device_map=None if device == "cpu" else device,
        load_4bit=p.load_4bit,
        processor=p.image.enabled,
    )


def _image(p: Params, model: Any) -> tuple[Any, str | None]:
    if not p.image.enabled:
        return None, None
    if getattr(model.config, "vision_config", None) is None:
        raise UserError(
            f"image.enabled: model {p.model!r} has no vision part; use an image+text model "
            "(e.g. google/gemma-3-4b-it) or set image.enabled=false"
        )
    from .image import load_image

    return load_image(p.image.path)


def run(ctx: RunContext) -> dict[str, float]:
    p: Params = ctx.params  # type: ignore[assignment]
    prompts = load_prompt_set(p.prompts.set, p.prompts.limit)
    device = resolve_device(p.device)
    if device == "cpu" and p.cpu_threads:
        import torch

        # On a shared CPU, OpenMP threads spin-waiting on each other can make two
        # threads several times slower than one; the preset decides.
        torch.set_num_threads(p.cpu_threads)
    ctx.phase("load", None)
    model, tok = _load(p, device)
    image, image_name = _image(p, model)
    groups = discover_groups(model, p.layer_start, p.layer_end)
    check_degradable(groups, p.param_groups, p.load_4bit)
    subset = groups.union(p.param_groups)
    snapshot = SubsetSnapshot(subset)
    dtype = str(subset[0][1].dtype).removeprefix("torch.")
    ctx.info(
        f"{p.model} on {device} ({dtype}): {groups.n_layers} layers at {groups.layers_path}, "
        f"layers {groups.layer_range[0]}..{groups.layer_range[1]}; snapshot of "
        f"{len(subset)} tensors, {snapshot.nbytes / 2**20:.1f} MiB; {len(prompts)} prompts from {prompts.source}"
    )
    for name in p.param_groups:
        g = groups.groups[name]
        ctx.info(
            f"group {name}: {len(g.params)} tensors, {g.numel:,} parameters {'; '.join(g.notes)}".rstrip()
        )
    rt = Runtime(
        model=model,
        tok=tok,
        groups=groups,
        snapshot=snapshot,
        prompts=prompts,
        device=device,
        dtype=dtype,
        image=image,
        image_filename=image_name,
        perplexity_text=p.perplexity_text or shipped_perplexity_text(),
    )
    sweep = Sweep(ctx, p, rt)
    try:
        final = sweep.run()
    except StopRequested:
        _write_stopped(ctx, sweep)
        raise
    _write_level_table(ctx, sweep.level_table())
    ctx.info(
        f"sweep finished: restore {sweep.restore_seconds:.3f}s, generation {sweep.generate_seconds:.1f}s"
    )
    return final


def _write_stopped(ctx: RunContext, sweep: Sweep) -> None:
    """A stopped sweep's numbers from the records so far (each group at the highest
    level it reached), so `show` and the dashboard have them before any resume; the
    resumed run's completion replaces them."""
    _write_level_table(ctx, sweep.level_table())
    summary = {
        "final_metrics": sweep.final_metrics(reached=True),
        "partial": True,
        "records": len(ctx.ledger),
        "stopped": time.time(),
    }
    write_json_atomic(ctx.run_dir / ARTIFACTS / SUMMARY, summary)


def _write_level_table(ctx: RunContext, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    fields = list(dict.fromkeys(k for r in rows for k in r))
    ctx.artifacts_dir.mkdir(parents=True, exist_ok=True)
    with open(ctx.artifacts_dir / "level_metrics.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)


def dry_run(params: Params) -> DryRun:
    return estimate(params)
