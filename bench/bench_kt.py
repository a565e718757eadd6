"""kt benchmarks, side by side in one process on the demo preset's synthetic data.

1. Trainer overhead: one training epoch through labdeck's trainer (loss bookkeeping,
   batch metrics and progress events into a real run directory, stop checks) against a
   bare PyTorch loop over the same model, batches and loss. Epochs alternate between the
   two, and which side runs first alternates per round, so machine noise and drift hit
   both alike; the ratio of medians is printed.
2. Test AUC: the demo model trained for the preset's epochs, next to the per-skill
   frequency baseline and PFA (logistic) on the same simulated students.

Usage: python bench/bench_kt.py [--rounds 4] [--threads 1] [--skip-auc]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
import tomllib
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from labdeck.backend.events import EventWriter  # noqa: E402
from labdeck.backend.kinds.base import RunContext, StateKeeper  # noqa: E402
from labdeck.backend.kinds.kt.baselines import frequency_baseline, pfa_baseline  # noqa: E402
from labdeck.backend.kinds.kt.config import Params  # noqa: E402
from labdeck.backend.kinds.kt.data import load_data  # noqa: E402
from labdeck.backend.kinds.kt.evaluate import evaluate_model  # noqa: E402
from labdeck.backend.kinds.kt.losses import compute  # noqa: E402
from labdeck.backend.kinds.kt.prefit import skip_parameters  # noqa: E402
from labdeck.backend.kinds.kt.train import (  # noqa: E402
    Trainer,
    build_model,
    build_optimizer,
    configure_determinism,
    train_batches,
    trimmed_batch,
)
from labdeck.backend.ledger import Ledger  # noqa: E402
from labdeck.backend.runs import create_run_dir, new_run_id  # noqa: E402


def demo_params() -> Params:
    with open(REPO / "presets" / "kt-demo.toml", "rb") as fh:
        return Params(**tomllib.load(fh)["params"])


def bare_epoch(model, optimizer, data, p: Params, epoch: int, weights, device) -> None:
    """What a hand-written loop does: forward, the same loss, backward, clip, step."""
    model.train()
    for rows in train_batches(data.train, p.batch_size, p.seed, epoch):
        batch = trimmed_batch(data.train, rows, device)
        out = model(batch.concepts, batch.responses)
        total, _, _ = compute(out, batch, weights)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), p.gradient_clip)
        optimizer.step()


def make_context(root: Path, p: Params) -> RunContext:
    run_id = new_run_id(root, "kt", "bench")
    run = create_run_dir(root, run_id, json.dumps({"kind": "kt", "params": p.model_dump()}))
    import logging

    return RunContext(
        run, p, EventWriter(run.events_path), Ledger(run.records_path), StateKeeper(run),
        logging.getLogger("bench"), threading.Event(), "val_auc",
    )  # fmt: skip


def bench_overhead(p: Params, data, device, rounds: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        ctx = make_context(Path(tmp), p)
        trainer = Trainer(p, data, device)
        bare_model = build_model(p, data.num_c, device)
        if p.skip_prefit:  # frozen in the trainer too: equal work on both sides
            for w in skip_parameters(bare_model):
                w.requires_grad_(False)
        bare_opt = build_optimizer(bare_model, p)
        weights = trainer.weights(p.warmup_constraint_epochs)  # all losses active

        def on_batch(i: int, n: int, total: torch.Tensor) -> None:
            ctx.check_stop()
            if i % p.monitor_frequency == 0 or i == n:
                ctx.metric("batch_loss", float(total.detach()), step=i)
                ctx.progress(0, batch=i, batches=n)

        labdeck_t, bare_t = [], []
        for r in range(rounds + 1):  # round 0 warms up both
            times: dict[str, float] = {}
            # alternate which side goes first, so drift on the machine hits both alike
            for side in ("labdeck", "bare") if r % 2 == 0 else ("bare", "labdeck"):
                t = time.perf_counter()
                if side == "labdeck":
                    trainer.train_epoch(r + 1, weights, on_batch)
                else:
                    bare_epoch(bare_model, bare_opt, data, p, r + 1, weights, device)
                times[side] = time.perf_counter() - t
            a, b = times["labdeck"], times["bare"]
            if r:
                labdeck_t.append(a)
                bare_t.append(b)
                first = "labdeck" if r % 2 == 0 else "bare"
                print(f"  round {r} ({first} first): labdeck {a:.3f}s  bare {b:.3f}s")
        t = time.perf_counter()
        trainer.fit_skips()
        prefit = time.perf_counter() - t
        t = time.perf_counter()
        trainer.run_epoch()
        full = time.perf_counter() - t
        ctx.events.close()
        ctx.ledger.close()
    lab, bare = statistics.median(labdeck_t), statistics.median(bare_t)
    print(f"training epoch, median of {rounds}: labdeck {lab:.3f}s, bare loop {bare:.3f}s")
    print(f"full labdeck epoch incl. validation, semantic and global passes: {full:.3f}s")
    print(f"skip-term prefit before the first epoch (once per run): {prefit:.3f}s")
    ratio = lab / bare
    print(f"kt_trainer_overhead: ratio={ratio:.3f} (goal <= 1.05)")
    return ratio


def bench_auc(p: Params, data, device) -> None:
    freq = frequency_baseline(data.train, data.test, data.num_c)
    pfa = pfa_baseline(data.train, data.test, data.num_c)
    t = time.perf_counter()
    trainer = Trainer(p, data, device)
    trainer.train_in_memory()  # the best epoch's weights, as the kind evaluates
    ev = evaluate_model(trainer.model, data, p, device)
    print(f"trained {trainer.state.epoch} epochs in {time.perf_counter() - t:.1f}s")
    print(f"{'model':<28}{'test AUC':>10}{'test acc':>10}")
    print(f"{'kt transformer (demo)':<28}{ev['test_auc']:>10.4f}{ev['test_acc']:>10.4f}")
    print(f"{'PFA (logistic)':<28}{pfa['auc']:>10.4f}{pfa['accuracy']:>10.4f}")
    print(f"{'per-skill frequency':<28}{freq['auc']:>10.4f}{freq['accuracy']:>10.4f}")
    print(f"predicted vs true mastery correlation: {ev['test_true_mastery_correlation']:.4f}")
    print(f"kt_test_auc_vs_pfa: ratio={ev['test_auc'] / pfa['auc']:.3f} (goal >= 1.0)")
    print(f"kt_test_auc_vs_frequency: ratio={ev['test_auc'] / freq['auc']:.3f} (goal > 1.0)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip-auc", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = configure_determinism()
    p = demo_params()
    data = load_data(p)
    print(f"{data.describe()}; device {device}; {args.threads} thread(s)")
    bench_overhead(p, data, device, args.rounds)
    if not args.skip_auc:
        bench_auc(p, data, device)


if __name__ == "__main__":
    main()
