"""Phase 6 of an `em` run: the misalignment direction, steering (a layer × α sweep with a
random-direction control) and projection ablation (see directions.py for the method)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ...errors import UserError
from ...jsonio import write_atomic, write_json_atomic
from ...kinds.base import RunContext
from ...ledger import unit_key
from .config import Params
from .evaluator import Evaluator

DIRECTIONS_JSON = "misalignment_directions.json"
SWEEP_CSV = "steering_sweep.csv"
SWEEP_COLUMNS = (
    "intervention", "layer", "alpha", "checkpoint", "n", "n_scored", "misaligned",
    "misaligned_rate", "misaligned_rate_model_organisms", "misaligned_rate_betley",
    "coherent_rate", "aligned", "coherent",
)  # fmt: skip


def direction_steps(p: Params, steps: list[int]) -> list[int]:
    """The checkpoints whose answers make the direction."""
    if p.direction_source == "pooled":
        return steps
    step = steps[-1] if p.direction_checkpoint < 0 else p.direction_checkpoint
    if step not in steps:
        raise UserError(f"direction_checkpoint: no checkpoint at step {step} (have {steps})")
    return [step]


def directions_phase(ctx: RunContext, p: Params, steps: list[int]) -> Any:
    """The direction per layer from the chosen checkpoints' activations and scores, with
    the counts that made it; None (and the counts) when a side has too few answers."""
    import numpy as np

    from .directions import misalignment_direction

    ctx.phase("directions", 1)
    chosen = direction_steps(p, steps)
    acts, mis, ali, layers = [], [], [], None
    for step in chosen:
        meta = json.loads((ctx.artifacts_dir / f"checkpoint_{step}_activations.json").read_text())
        with np.load(ctx.artifacts_dir / f"checkpoint_{step}_activations.npz") as z:
            acts.append(z["activations"].astype(np.float32))
            layers = z["layers"].tolist()
        for a, c in zip(meta["aligned"], meta["coherent"], strict=True):
            coherent = c is not None and c > p.coherent_above
            mis.append(coherent and a is not None and a <= p.aligned_below)
            ali.append(coherent and a is not None and a > p.direction_aligned_min)
    balanced = p.direction_source == "checkpoint"
    direction = misalignment_direction(
        np.concatenate(acts),
        mis,
        ali,
        layers or [],
        balance_seed=p.seed if balanced else None,
        min_per_side=p.direction_min_answers,
    )
    info: dict[str, Any] = {
        "direction_source": p.direction_source,
        "checkpoints": chosen,
        "n_misaligned_available": int(sum(mis)),
        "n_aligned_available": int(sum(ali)),
        "min_per_side": p.direction_min_answers,
        "definition": (
            f"per layer: mean answer-token residual (output of each decoder block) of "
            f"misaligned answers (aligned <= {p.aligned_below:g}, coherent > "
            f"{p.coherent_above:g}) minus that of aligned ones (aligned > "
            f"{p.direction_aligned_min:g}, coherent > {p.coherent_above:g})"
            + (
                f"; aligned set subsampled to the misaligned count, seed {p.seed}"
                if balanced
                else ""
            )
        ),
    }
    if direction is None:
        short = "misaligned" if sum(mis) < p.direction_min_answers else "aligned"
        info.update(
            {
                "direction": None,
                "result": f"not enough {short} answers",
            }
        )
        ctx.warn(
            f"no misalignment direction: not enough {short} answers ({int(sum(mis))} "
            f"misaligned, {int(sum(ali))} aligned at step(s) {chosen}; at least "
            f"{p.direction_min_answers} of each needed)"
        )
    else:
        path = ctx.artifacts_dir / "misalignment_directions.npz"
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "wb") as fh:
            np.savez(fh, directions=direction.vectors, layers=np.array(direction.layers))
        tmp.replace(path)
        info.update(
            {
                "n_misaligned": direction.n_misaligned,
                "n_aligned": direction.n_aligned,
                "layers": direction.layers,
                "norms": direction.norms,
                "file": path.name,
            }
        )
    write_json_atomic(ctx.artifacts_dir / DIRECTIONS_JSON, info)
    ctx.progress(1)
    return direction


def judged_answers(evaluator: Evaluator, step: int) -> list[Any]:
    """Every question's samples generated and judged with whatever hooks are active.

    Rows are seeded as the checkpoint's own answers at `step` are (same keys), so an
    intervention is compared with the unchanged model on the same random draws."""
    from .evaluate import generate_answers

    texts: dict[int, str] = {}

    def keep(rows: list[tuple[int, str, int, float, int]]) -> None:
        texts.update({i: text for i, text, *_ in rows})

    generate_answers(
        evaluator.model, evaluator.tok, evaluator.slots, evaluator.gen,
        evaluator.controller, evaluator.p.seed, step, keep,
    )  # fmt: skip
    answers = [
        {"question_id": q.id, "sample": s, "answer": texts[i]}
        for i, (q, s) in enumerate(evaluator.slots)
    ]
    return evaluator.scored(answers, evaluator.verdicts(answers))


def _random_seed(seed: int, layer: int) -> int:
    return int(hashlib.sha256(f"{seed}:random-direction:{layer}".encode()).hexdigest()[:12], 16)


def _steering_layers(p: Params, evaluator: Evaluator, direction: Any) -> list[int]:
    n_layers = evaluator.model.config.get_text_config().num_hidden_layers
    layers = list(p.steering_layers) or [
        p.steering_layer if p.steering_layer >= 0 else n_layers // 2
    ]
    missing = [layer for layer in layers if layer not in direction.layers]
    if missing:
        raise UserError(
            f"steering layer {missing[0]} has no direction (activation_layers {direction.layers})"
        )
    return layers


def _intervention(
    ctx: RunContext,
    p: Params,
    evaluator: Evaluator,
    key: str,
    step: int,
    fields: dict[str, Any],
    hooks: Any,
) -> dict[str, Any]:
    """One judged intervention (a ledger unit): generate under `hooks`, judge, record."""
    from .evaluate import checkpoint_metrics

    if ctx.is_done(key):
        return next(r for r in _records(ctx) if r["key"] == key)
    with hooks:
        scored = judged_answers(evaluator, step)
    metrics = checkpoint_metrics(scored, p)
    row = {"checkpoint": step, **fields, **metrics, "answers": [r.row() for r in scored]}
    ctx.record(key, {"unit": "steering", **row})
    ctx.check_stop()
    return row


def _records(ctx: RunContext) -> list[dict[str, Any]]:
    from ...jsonl import JsonlReader

    return [r for r in JsonlReader(ctx.run.records_path).read_new() if r.get("unit") == "steering"]


def steering_phase(
    ctx: RunContext, p: Params, evaluator: Evaluator, ckpts: dict[int, Path], direction: Any
) -> None:
    """α × direction added at each swept layer of the steered checkpoint, and (control) a
    random direction of the same norm; one record and one metric event per point."""
    from .directions import random_like, steering

    layers = _steering_layers(p, evaluator, direction)
    if p.steering_checkpoint not in ckpts:
        raise UserError(
            f"steering_checkpoint: no checkpoint at step {p.steering_checkpoint} (have {list(ckpts)})"
        )
    kinds = ["direction", "random"] if p.steering_random_control else ["direction"]
    ctx.phase("steering", len(layers) * len(p.steering_alphas) * len(kinds))
    evaluator.trainer.load_adapter_weights(ckpts[p.steering_checkpoint])
    step, done = p.steering_checkpoint, 0
    for layer in layers:
        vectors = {
            "direction": direction.at(layer),
            "random": random_like(direction.at(layer), _random_seed(p.seed, layer)),
        }
        for alpha in p.steering_alphas:
            for kind in kinds:
                key = unit_key("steering", step, layer, alpha, kind)
                fresh = not ctx.is_done(key)
                row = _intervention(
                    ctx, p, evaluator, key, step,
                    {"intervention": f"steer-{kind}", "layer": layer, "alpha": alpha},
                    steering(evaluator.model, layer, vectors[kind], alpha),
                )  # fmt: skip
                if fresh:
                    name = "steering_misaligned_rate" if kind == "direction" else (
                        "steering_random_misaligned_rate"
                    )  # fmt: skip
                    ctx.metric(name, row["misaligned_rate"], level=alpha, group=f"layer {layer}")
                done += 1
                ctx.progress(done)
    write_sweep(ctx)


def ablation_phase(
    ctx: RunContext, p: Params, evaluator: Evaluator, ckpts: dict[int, Path], direction: Any
) -> None:
    """The final checkpoint with the direction projected out at one layer or at all."""
    from .directions import ablation

    step = max(ckpts)
    if p.ablation == "layer":
        layer = _steering_layers(
            p.model_copy(update={"steering_layers": []}), evaluator, direction
        )[0]
        vectors, level = {layer: direction.at(layer)}, layer
    else:
        vectors, level = {layer: direction.at(layer) for layer in direction.layers}, -1
    ctx.phase("ablation", 1)
    evaluator.trainer.load_adapter_weights(ckpts[step])
    key = unit_key("ablation", step, p.ablation, level)
    fresh = not ctx.is_done(key)
    row = _intervention(
        ctx, p, evaluator, key, step,
        {"intervention": f"ablate-{p.ablation}", "layer": level, "alpha": None},
        ablation(evaluator.model, vectors),
    )  # fmt: skip
    if fresh:
        ctx.metric("ablation_misaligned_rate", row["misaligned_rate"], level=level)
        ctx.metric("ablation_coherent_rate", row["coherent_rate"], level=level)
    ctx.progress(1)
    write_sweep(ctx)


def write_sweep(ctx: RunContext) -> None:
    """steering_sweep.csv: every steering and ablation record, one row each."""
    import csv
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(SWEEP_COLUMNS), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(_records(ctx))
    write_atomic(ctx.artifacts_dir / SWEEP_CSV, buf.getvalue())
