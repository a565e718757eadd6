"""Restore policy on smollm2-135m: restore the degraded group in place vs reload the model.

A sweep degrades one group per (level, repeat) and restores exactly that group
before the next one, so restore is timed per group (attention, mlp, embedding:
the seed's groups; `all` shown for reference). Reload is `load_model` from the
local safetensors cache with a warm page cache: the most favourable case for
reloading. Prints each, the ratio reload / mean restore over the seed's groups
(goal >= 20x), and the share of one level's wall time (restore + degrade +
batched generation of the demo's 8 prompts × 32 tokens) spent restoring (goal < 2 %).
Usage: python bench/bench_restore.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SEED_GROUPS = ("attention", "mlp", "embedding")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
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

    restore: dict[str, float] = {}
    for group in (*SEED_GROUPS, "all"):
        restore[group] = statistics.median(degrade_then_restore(group) for _ in range(args.repeats))
        mib = mg.groups[group].numel * 4 / 2**20
        print(f"restore {group:<10}: {restore[group] * 1000:7.1f} ms  ({mib:5.0f} MiB)")
    assert snap.matches(), "restore must give back the exact weights"

    reloads = []
    for _ in range(max(2, args.repeats // 2)):
        t0 = time.perf_counter()
        load_model("smollm2-135m")
        reloads.append(time.perf_counter() - t0)
    reload = statistics.median(reloads)
    mean_restore = statistics.fmean(restore[g] for g in SEED_GROUPS)
    print(f"reload from disk  : {reload * 1000:7.1f} ms (median of {len(reloads)})")

    texts = [p.text for p in load_prompt_set("dreams", 8).prompts]
    generate_batch(model, tok, texts[:2], GenParams(max_new_tokens=2))  # warm-up
    gen = GenParams(max_new_tokens=32, do_sample=False)
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
    print(f"bench_restore_share: ratio={max(shares) * 100:.2f}% (goal < 2%)")
    print(f"bench_restore: ratio={reload / mean_restore:.1f} (goal >= 20)")


if __name__ == "__main__":
    main()
