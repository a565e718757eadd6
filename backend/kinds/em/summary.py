"""The run's closing files: the seed's summaries and its misaligned-rate plot."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from ...jsonio import write_atomic, write_json_atomic
from .config import Params
from .judging import judge_is_weak

SUMMARY_COLUMNS = (
    "step", "checkpoint", "loss", "misaligned_rate", "ci_low", "ci_high", "misaligned", "n",
    "aligned", "coherent", "judge_unparsable",
)  # fmt: skip


def write_summary(artifacts: Path, rows: list[dict[str, Any]], extra: dict[str, Any]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(SUMMARY_COLUMNS), extrasaction="ignore")
    writer.writeheader()
    for r in rows:
        writer.writerow(r)
    write_atomic(artifacts / "checkpoint_summary.csv", buf.getvalue())
    clean = [{k: r.get(k) for k in SUMMARY_COLUMNS} for r in rows]
    write_json_atomic(artifacts / "checkpoint_summary.json", {**extra, "checkpoints": clean})


def plot_curve(path: Path, rows: list[dict[str, Any]], title: str) -> Path:
    """Misaligned rate vs step with its 95 % interval (the seed's per-run plot)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in rows]
    rate = [100 * r["misaligned_rate"] for r in rows]
    lo = [100 * r["ci_low"] for r in rows]
    hi = [100 * r["ci_high"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(steps, rate, marker="o", color="tab:blue")
    ax.fill_between(steps, lo, hi, color="tab:blue", alpha=0.15, label="95% interval")
    ax.set_xlabel("training step")
    ax.set_ylabel("misaligned answers (%)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


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
        extra = {"judge": p.judge, "judge_model": p.judge_model, "judge_weak": judge_is_weak(p)}
        write_summary(ctx.artifacts_dir, rows, extra)
        plot_curve(
            ctx.artifacts_dir / "misaligned_rate.png",
            rows,
            f"{ctx.run.id}: misaligned answers per checkpoint",
        )
        last = rows[-1]
        final.update(
            {
                "misaligned_rate": last["misaligned_rate"],
                "misaligned_rate_max": max(r["misaligned_rate"] for r in rows),
                "judge_unparsable": float(sum(r["judge_unparsable"] for r in rows)),
            }
        )
        for name, field in (("aligned_mean", "aligned"), ("coherent_mean", "coherent")):
            if last[field] is not None:  # no verdict had a score: nothing to report
                final[name] = last[field]
    ctx.progress(1)
    return final
