"""The kt-specific trajectory figure: correlations and loss shares over epochs, one PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

CORRELATIONS = (
    "mastery_correlation",
    "gain_correlation",
    "global_alignment_mastery_corr",
    "global_alignment_gain_corr",
    "peak_mastery_corr",
    "true_mastery_correlation",
)


def plot_trajectory(trajectory: list[dict[str, Any]], path: Path, title: str = "") -> Path | None:
    """Draw the trajectory; None when there is nothing to draw (no finished epoch)."""
    if not trajectory:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [e["epoch"] for e in trajectory]
    # constrained layout leaves room for the suptitle (tight_layout let it overlap the
    # subplot titles)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5), layout="constrained")
    for name in CORRELATIONS:
        values = [e.get(name) for e in trajectory]
        if any(v is not None for v in values):
            ax1.plot(
                epochs, [float("nan") if v is None else v for v in values], marker="o", label=name
            )
    ax1.set(xlabel="epoch", ylabel="Pearson correlation", title="semantic correlations")
    ax1.axhline(0.0, color="grey", lw=0.5)
    ax1.legend(fontsize=7)
    for share in trajectory[0]["loss_shares"]:
        ax2.plot(epochs, [e["loss_shares"][share] for e in trajectory], marker="o", label=share)
    ax2.set(xlabel="epoch", ylabel="share of |loss|", title="loss shares")
    ax2.axhline(0.0, color="grey", lw=0.5)
    ax2.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)
    return path
