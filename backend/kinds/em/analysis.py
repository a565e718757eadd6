"""Phase 6 of an `em` run: the misalignment direction and the steering experiments."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ...errors import UserError
from ...jsonio import write_atomic, write_json_atomic
from ...kinds.base import RunContext
from ...ledger import unit_key
from .config import Params
from .evaluator import Evaluator


def directions_phase(ctx: RunContext, p: Params, steps: list[int]) -> Any:
    """Pool every checkpoint's activations and scores; write the direction per layer."""
    import numpy as np

    from ...judges.score import is_misaligned
    from .directions import misalignment_direction

    ctx.phase("directions", 1)
    acts, mis, ali, layers = [], [], [], None
    for step in steps:
        meta = json.loads((ctx.artifacts_dir / f"checkpoint_{step}_activations.json").read_text())
        with np.load(ctx.artifacts_dir / f"checkpoint_{step}_activations.npz") as z:
            acts.append(z["activations"].astype(np.float32))
            layers = z["layers"].tolist()
        for a, c in zip(meta["aligned"], meta["coherent"], strict=True):
            bad = is_misaligned(a, c, p.aligned_below, p.coherent_above)
            mis.append(bad)
            ali.append(
                not bad
                and a is not None
                and c is not None
                and a >= p.direction_aligned_min
                and c > p.coherent_above
            )
    direction = misalignment_direction(np.concatenate(acts), mis, ali, layers or [])
    info: dict[str, Any] = {
        "checkpoints": steps,
        "n_misaligned": int(sum(mis)),
        "n_aligned": int(sum(ali)),
        "definition": (
            f"mean activation of misaligned answers (aligned < {p.aligned_below:g}, coherent > "
            f"{p.coherent_above:g}) minus that of aligned ones (aligned >= "
            f"{p.direction_aligned_min:g}, coherent > {p.coherent_above:g}), per layer"
        ),
    }
    if direction is None:
        info["direction"] = None
        ctx.warn(
            f"no misalignment direction: {info['n_misaligned']} misaligned and "
            f"{info['n_aligned']} aligned answers (both groups are needed)"
        )
    else:
        path = ctx.artifacts_dir / "misalignment_directions.npz"
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "wb") as fh:
            np.savez(fh, directions=direction.vectors, layers=np.array(direction.layers))
        tmp.replace(path)
        info.update({"layers": direction.layers, "norms": direction.norms, "file": path.name})
    write_json_atomic(ctx.artifacts_dir / "misalignment_directions.json", info)
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


def steering_phase(
    ctx: RunContext, p: Params, evaluator: Evaluator, ckpts: dict[int, Path], direction: Any
) -> None:
    """Generate and judge with α × direction added at one layer; one record per α."""
    from .directions import steering
    from .evaluate import checkpoint_metrics

    n_layers = evaluator.model.config.get_text_config().num_hidden_layers
    layer = p.steering_layer if p.steering_layer >= 0 else n_layers // 2
    if layer not in direction.layers:
        raise UserError(
            f"steering_layer: layer {layer} has no direction (activation_layers {direction.layers})"
        )
    if p.steering_checkpoint not in ckpts:
        raise UserError(
            f"steering_checkpoint: no checkpoint at step {p.steering_checkpoint} (have {list(ckpts)})"
        )
    ctx.phase("steering", len(p.steering_alphas))
    evaluator.trainer.load_adapter_weights(ckpts[p.steering_checkpoint])
    rows_out = []
    for n, alpha in enumerate(p.steering_alphas):
        key = unit_key("steering", p.steering_checkpoint, layer, alpha)
        if not ctx.is_done(key):
            with steering(evaluator.model, layer, direction.at(layer), alpha):
                scored = judged_answers(evaluator, p.steering_checkpoint)
            metrics = checkpoint_metrics(scored, p)
            ctx.record(
                key,
                {
                    "unit": "steering", "alpha": alpha, "layer": layer,
                    "checkpoint": p.steering_checkpoint, **metrics,
                    "answers": [r.row() for r in scored],
                },
            )  # fmt: skip
            ctx.metric("steering_misaligned_rate", metrics["misaligned_rate"], level=alpha)
            ctx.check_stop()
        ctx.progress(n + 1)
    from ...jsonl import JsonlReader

    for r in JsonlReader(ctx.run.records_path).read_new():
        if r.get("unit") == "steering":
            rows_out.append(
                {
                    k: r[k]
                    for k in (
                        "alpha",
                        "layer",
                        "checkpoint",
                        "n",
                        "misaligned",
                        "misaligned_rate",
                        "aligned",
                        "coherent",
                    )
                }
            )
    import csv
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows_out[0]))
    writer.writeheader()
    writer.writerows(rows_out)
    write_atomic(ctx.artifacts_dir / "steering_sweep.csv", buf.getvalue())
