"""Restore policy on smollm2-135m: labdeck's restore against the seed's own.

A sweep degrades one group per (level, repeat) and restores it before the next one.
The baseline is the seed's `subset_in_memory` policy as the seed wrote it: at the
start `.clone()` the degradable subset (the experiment's group) to CPU memory, and
before every repetition copy that whole subset back over the model's parameters.
labdeck's `SubsetSnapshot` copies back only the parameters degraded since the last
restore. Both restore the same group after the same degradation, alternating which
goes first; per group (attention, mlp, embedding: the seed's groups) the medians are
printed, and the figure is seed / labdeck over the three (goal >= 0.95: no slower than
the seed; both are in-memory copies of the same bytes, so this guards against a
regression, not a speed-up). Also printed: a reload of the model from the local cache
(what a sweep without a snapshot pays), and the share of one level's wall time
(restore + degrade + batched generation of the demo's prompts) spent restoring (goal < 2 %).
Usage: python bench/bench_restore.py [--repeats 5] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from figures import Figures

SEED_GROUPS = ("attention", "mlp", "embedding")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--prompts", type=int, default=8, help="prompts per level (the demo's 8)")
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--quick", action="store_true", help="3 repeats")
    args = ap.parse_args()
    if args.quick:
        args.repeats = 3
    figures = Figures("bench_restore")
    import torch

    from labdeck.backend.generation import GenParams, generate_batch
    from labdeck.backend.kinds.degradation.groups import discover_groups
    from labdeck.backend.kinds.degradation.methods import degrade
    from labdeck.backend.kinds.degradation.promptsets import load_prompt_set
    from labdeck.backend.kinds.degradation.restore import SubsetSnapshot
    from labdeck.backend.models import load_model

    torch.set_num_threads(1)
    model, tok = load_model("smollm2-135m")
    mg = discover_groups(model)
    snap = SubsetSnapshot(mg.union(list(SEED_GROUPS)))
    print(
        f"smollm2-135m: snapshot of {len(snap.names)} tensors, {snap.nbytes / 2**20:.0f} MiB (CPU)"
    )

    def degrade_then_restore(group: str) -> float:
        params = mg.groups[group].params
        snap.mark_dirty([n for n, _ in params])
        degrade(params, "mult_gauss", 0.1, seed=1)
        t0 = time.perf_counter()
        snap.restore()
        return time.perf_counter() - t0

    def seed_degrade_then_restore(group: str, saved: dict[str, torch.Tensor]) -> float:
        """The seed's restore: every saved parameter of the subset copied back."""
        degrade(mg.groups[group].params, "mult_gauss", 0.1, seed=1)
        t0 = time.perf_counter()
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name in saved:
                    p.data.copy_(saved[name].to(p.device))
        return time.perf_counter() - t0

    restore: dict[str, float] = {}
    seed: dict[str, float] = {}
    for group in SEED_GROUPS:
        # the seed's snapshot: the experiment's group, cloned to CPU at the start
        saved = {n: p.detach().clone().cpu() for n, p in mg.groups[group].params}
        ours, theirs = [], []
        for r in range(args.repeats):
            if r % 2:
                theirs.append(seed_degrade_then_restore(group, saved))
                ours.append(degrade_then_restore(group))
            else:
                ours.append(degrade_then_restore(group))
                theirs.append(seed_degrade_then_restore(group, saved))
        restore[group], seed[group] = statistics.median(ours), statistics.median(theirs)
        mib = mg.groups[group].numel * 4 / 2**20
        print(
            f"restore {group:<10}: labdeck {restore[group] * 1000:7.1f} ms, seed's "
            f"subset_in_memory {seed[group] * 1000:7.1f} ms  ({mib:5.0f} MiB)"
        )
    assert snap.matches(), "restore must give back the exact weights"

    reloads = []
    for _ in range(max(2, args.repeats // 2)):
        t0 = time.perf_counter()
        load_model("smollm2-135m")
        reloads.append(time.perf_counter() - t0)
    reload = statistics.median(reloads)
    mean_restore = statistics.fmean(restore[g] for g in SEED_GROUPS)
    mean_seed = statistics.fmean(seed[g] for g in SEED_GROUPS)
    print(f"reload from disk  : {reload * 1000:7.1f} ms (median of {len(reloads)})")

    texts = [p.text for p in load_prompt_set("dreams", args.prompts).prompts]
    generate_batch(model, tok, texts[:2], GenParams(max_new_tokens=2))  # warm-up
    gen = GenParams(max_new_tokens=args.tokens, do_sample=False)
    shares = []
    for group in SEED_GROUPS:
        t0 = time.perf_counter()
        r = degrade_then_restore(group)
        params = mg.groups[group].params
        snap.mark_dirty([n for n, _ in params])
        degrade(params, "mult_gauss", 0.1, seed=1)
        generate_batch(model, tok, texts, gen)
        level = time.perf_counter() - t0
        shares.append(r / level)
        print(
            f"level on {group:<9}: {level:6.2f} s, restore {r * 1000:.1f} ms ({r / level * 100:.2f} %)"
        )
    snap.restore()
    figures.add(
        "bench_restore_vs_seed", mean_seed / mean_restore, ">= 0.95",
        labdeck=f"{mean_restore * 1000:.1f} ms", baseline=f"{mean_seed * 1000:.1f} ms seed restore",
        note="mean over attention, mlp, embedding",
    )  # fmt: skip
    figures.add(
        "bench_restore_vs_reload", reload / mean_restore, "", labdeck=f"{mean_restore * 1000:.1f} ms",
        baseline=f"{reload * 1000:.0f} ms reload", note="no goal: reloading is not what the seed did",
    )  # fmt: skip
    figures.add(
        "bench_restore_share", max(shares) * 100, "< 2", unit="percent",
        labdeck=f"{max(shares) * 100:.2f}% of a level restoring",
    )  # fmt: skip
    figures.finish()


if __name__ == "__main__":
    main()
