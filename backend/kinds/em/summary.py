"""The run's closing files: the seed's summaries and its misaligned-rate plot."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from ...axes import label_x
from ...jsonio import write_atomic, write_json_atomic
from .config import Params
from .judging import judge_is_weak

# One row per checkpoint over all questions (question_id "all"), then one per question.
# misaligned_rate/ci_* follow the run's em_rate; both conventions' columns are always there.
# An empty rate is a checkpoint (or question) with no answer the convention counts.
SUMMARY_COLUMNS = (
    "step", "checkpoint", "question_id", "em_rate", "loss", "misaligned_rate", "ci_low",
    "ci_high", "misaligned", "n_counted", "n", "n_scored", "n_unscored",
    "misaligned_rate_model_organisms", "n_model_organisms", "misaligned_rate_betley",
    "n_betley", "aligned", "coherent", "judge_unparsable",
)  # fmt: skip


def summary_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The CSV's rows: each checkpoint over all questions, then each checkpoint per question."""
    out = [{**r, "question_id": "all"} for r in rows]
    for r in rows:
        for qid, q in (r.get("per_question") or {}).items():
            out.append(
                {"step": r["step"], "checkpoint": r["checkpoint"], "question_id": qid,
                 "em_rate": r.get("em_rate"), **q}
            )  # fmt: skip
    return out


def write_summary(artifacts: Path, rows: list[dict[str, Any]], extra: dict[str, Any]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(SUMMARY_COLUMNS), extrasaction="ignore")
    writer.writeheader()
    for r in summary_rows(rows):
        writer.writerow(r)
    write_atomic(artifacts / "checkpoint_summary.csv", buf.getvalue())
    keep = (*SUMMARY_COLUMNS, "per_question")
    clean = [{k: r.get(k) for k in keep if k != "question_id"} for r in rows]
    write_json_atomic(artifacts / "checkpoint_summary.json", {**extra, "checkpoints": clean})


def rate_label(p: Params) -> str:
    """How the rate was counted, for titles: the convention and its rule."""
    rule = {
        "model-organisms": f"aligned ≤ {p.aligned_below:g} & coherent > {p.coherent_above:g}",
        "betley": f"aligned < {p.aligned_below:g} among coherent ≥ {p.coherent_above:g}",
    }[p.em_rate]
    return f"em_rate={p.em_rate} ({rule})"


def plot_curve(path: Path, rows: list[dict[str, Any]], title: str) -> Path:
    """Misaligned rate (%) vs step with its 95 % interval (the seed's per-run plot).

    A checkpoint with no counted answer has no rate: it is marked on the axis, not drawn
    as 0."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    known = [r for r in rows if r.get("misaligned_rate") is not None]
    missing = [r["step"] for r in rows if r.get("misaligned_rate") is None]
    steps = [r["step"] for r in known]
    rate = [100 * r["misaligned_rate"] for r in known]
    lo = [100 * r["ci_low"] for r in known]
    hi = [100 * r["ci_high"] for r in known]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, rate, marker="o", color="tab:blue")
    ax.fill_between(steps, lo, hi, color="tab:blue", alpha=0.15, label="95% interval")
    if missing:
        ax.plot(missing, [0] * len(missing), "x", color="grey", label="no scored answer (no rate)")
    label_x(ax, "training step", fontsize=10)
    ax.set_ylabel("misaligned answers (%)")
    ax.set_title(title, fontsize=9, wrap=True)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def analysis_summary(ctx: Any) -> dict[str, Any]:
    """The direction's counts (or why there is none) and every steering/ablation point."""
    import json

    from ...jsonl import JsonlReader
    from .analysis import DIRECTIONS_JSON, SWEEP_COLUMNS

    out: dict[str, Any] = {}
    path = ctx.artifacts_dir / DIRECTIONS_JSON
    if path.is_file():
        out["direction"] = json.loads(path.read_text(encoding="utf-8"))
    points = [
        {k: r.get(k) for k in SWEEP_COLUMNS}
        for r in JsonlReader(ctx.run.records_path).read_new()
        if r.get("unit") == "steering"
    ]
    if points:
        out["interventions"] = points
    return out


def finish(
    ctx: Any, p: Params, trainer: Any, result: Any, rows: list[dict[str, Any]], info: dict[str, Any]
) -> dict[str, float]:
    """Write the summaries and return the run's final metrics."""
    ctx.phase("summary", 1)
    steps_done = [r["step"] for r in result.losses]
    write_json_atomic(
        ctx.artifacts_dir / "training_metadata.json",
        {
            **info,
            "train_spec": trainer.spec.model_dump(),
            "lora": trainer.lora.model_dump(),
            "total_steps": trainer.total_steps,
            "checkpoint_steps": trainer.save_steps,
            "data_sha256": trainer.data_digest,
            "losses": result.losses,
            "micro_batch_sizes": sorted(set(r["micro_batch"] for r in result.losses)),
            "resumed_from": result.resumed_from,
            "steps": len(steps_done),
        },
    )
    final: dict[str, float] = {}
    if result.losses:
        final["final_loss"] = round(result.losses[-1]["loss"], 6)
        tokens = sum(r["tokens"] for r in result.losses)
        seconds = sum(r["seconds"] for r in result.losses)
        final["train_tokens_per_s"] = round(tokens / seconds, 3) if seconds else 0.0
    if rows:
        extra = {
            "judge": p.judge,
            "judge_model": p.judge_model,
            "judge_weak": judge_is_weak(p),
            "em_rate": p.em_rate,
            "em_rate_rule": rate_label(p),
            **analysis_summary(ctx),
        }
        write_summary(ctx.artifacts_dir, rows, extra)
        plot_curve(
            ctx.artifacts_dir / "misaligned_rate.png",
            rows,
            f"{ctx.run.id}: misaligned answers per checkpoint\n{rate_label(p)}",
        )
        last = rows[-1]
        rates = [r["misaligned_rate"] for r in rows if r["misaligned_rate"] is not None]
        final["judge_unparsable"] = float(sum(r["judge_unparsable"] for r in rows))
        if last["misaligned_rate"] is not None:
            final["misaligned_rate"] = last["misaligned_rate"]
        if rates:
            final["misaligned_rate_max"] = max(rates)
        for name, field in (("aligned_mean", "aligned"), ("coherent_mean", "coherent")):
            if last[field] is not None:  # no verdict had a score: nothing to report
                final[name] = last[field]
    ctx.progress(1)
    return final
