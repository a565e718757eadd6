"""kt benchmarks, side by side in one process.

1. Epoch cost, on the kind's default configuration (windows of 200 over histories of
   100: half of every window is padding): a whole epoch as the kind runs it (training
   with its bookkeeping and events into a real run directory, validation, the semantic
   and global alignment passes, the state update) against a bare PyTorch loop doing
   training plus one validation pass on the same model, weights and batches (goal
   <= 1.15). The training part alone is the second ratio (goal <= 1.05); labdeck's
   trainer computes the frozen skip terms once per sequence (batches.py) where the bare
   loop's forward recomputes them every batch, so this ratio can fall below 1. Epochs
   alternate between the two, and which side runs first alternates per round, so
   machine noise and drift hit both alike; ratios of medians are printed.
2. Test AUC: the demo preset's model trained for its epochs, next to the per-skill
   frequency baseline and PFA (logistic) on the same simulated students.

Usage: python bench/bench_kt.py [--rounds 4] [--threads 1] [--students N] [--skip-auc]
                                [--quick]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import threading
import time
import tomllib
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from figures import Figures  # noqa: E402

from labdeck.backend.events import EventWriter  # noqa: E402
from labdeck.backend.kinds.base import RunContext, StateKeeper  # noqa: E402
from labdeck.backend.kinds.kt.baselines import frequency_baseline, pfa_baseline  # noqa: E402
from labdeck.backend.kinds.kt.batches import trimmed_batch  # noqa: E402
from labdeck.backend.kinds.kt.config import Params  # noqa: E402
from labdeck.backend.kinds.kt.data import load_data  # noqa: E402
from labdeck.backend.kinds.kt.evaluate import evaluate_model  # noqa: E402
from labdeck.backend.kinds.kt.losses import compute  # noqa: E402
from labdeck.backend.kinds.kt.metrics import roc_auc  # noqa: E402
from labdeck.backend.kinds.kt.train import (  # noqa: E402
    Trainer,
    build_model,
    build_optimizer,
    configure_determinism,
    train_batches,
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


@torch.no_grad()
def bare_validate(model, data, p: Params, device) -> float:
    """One validation pass as a hand-written loop does it: batches in order, cut to
    their longest sequence like the training batches, AUC of the targets."""
    model.eval()
    ys, ps = [], []
    for start in range(0, len(data.valid), p.batch_size):
        rows = np.arange(start, min(start + p.batch_size, len(data.valid)))
        batch = trimmed_batch(data.valid, rows, device)
        out = model(batch.concepts, batch.responses)
        m = batch.target_mask
        ys.append(batch.responses[:, 1:][m].cpu().numpy())
        ps.append(torch.sigmoid(out.logits)[m].cpu().numpy())
    model.train()
    return roc_auc(np.concatenate(ys), np.concatenate(ps))


def make_context(root: Path, p: Params) -> RunContext:
    run_id = new_run_id(root, "kt", "bench")
    run = create_run_dir(root, run_id, json.dumps({"kind": "kt", "params": p.model_dump()}))
    return RunContext(
        run, p, EventWriter(run.events_path), Ledger(run.records_path), StateKeeper(run),
        logging.getLogger("bench"), threading.Event(), "val_auc",
    )  # fmt: skip


def bench_epoch(p: Params, data, device, rounds: int, figures: Figures) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ctx = make_context(Path(tmp), p)
        trainer = Trainer(p, data, device)
        t = time.perf_counter()
        trainer.fit_skips()
        prefit = time.perf_counter() - t
        # the same model on both sides: the fitted, frozen skip terms and the same weights
        bare_model = build_model(p, data.num_c, device)
        bare_model.load_state_dict(trainer.model.state_dict())
        for n, w in bare_model.named_parameters():
            w.requires_grad_(dict(trainer.model.named_parameters())[n].requires_grad)
        bare_opt = build_optimizer(bare_model, p)
        weights = trainer.weights(p.warmup_constraint_epochs)  # all losses active

        def on_batch(i: int, n: int, total: torch.Tensor) -> None:
            ctx.check_stop()
            if i % p.monitor_frequency == 0 or i == n:
                ctx.metric("batch_loss", float(total.detach()), step=i)
                ctx.progress(0, batch=i, batches=n)

        train_part: list[float] = []
        train_epoch = trainer.train_epoch

        def timed_train_epoch(*args, **kwargs):  # the training part of the kind's epoch
            t = time.perf_counter()
            result = train_epoch(*args, **kwargs)
            train_part.append(time.perf_counter() - t)
            return result

        trainer.train_epoch = timed_train_epoch
        rows: dict[str, list[float]] = {"epoch": [], "train": [], "bare": [], "bare_train": []}
        for r in range(rounds + 1):  # round 0 warms up both
            times: dict[str, float] = {}
            # alternate which side goes first, so drift on the machine hits both alike
            for side in ("labdeck", "bare") if r % 2 == 0 else ("bare", "labdeck"):
                t = time.perf_counter()
                if side == "labdeck":
                    trainer.run_epoch(on_batch)
                    times["epoch"] = time.perf_counter() - t
                    times["train"] = train_part[-1]
                else:
                    bare_epoch(bare_model, bare_opt, data, p, r + 1, weights, device)
                    times["bare_train"] = time.perf_counter() - t
                    bare_validate(bare_model, data, p, device)
                    times["bare"] = time.perf_counter() - t
            if r:
                for k, v in times.items():
                    rows[k].append(v)
                first = "labdeck" if r % 2 == 0 else "bare"
                print(
                    f"  round {r} ({first} first): labdeck epoch {times['epoch']:.3f}s "
                    f"(training {times['train']:.3f}s)  bare {times['bare']:.3f}s "
                    f"(training {times['bare_train']:.3f}s)"
                )
        ctx.events.close()
        ctx.ledger.close()
    med = {k: statistics.median(v) for k, v in rows.items()}
    print(f"skip-term prefit before the first epoch (once per run): {prefit:.3f}s")
    figures.add(
        "kt_epoch_overhead", med["epoch"] / med["bare"], "<= 1.15",
        labdeck=f"{med['epoch']:.3f}s epoch (train, validation, semantic, global)",
        baseline=f"{med['bare']:.3f}s bare train + validation", note=f"median of {rounds}",
    )  # fmt: skip
    figures.add(
        "kt_trainer_overhead", med["train"] / med["bare_train"], "<= 1.05",
        labdeck=f"{med['train']:.3f}s training", baseline=f"{med['bare_train']:.3f}s bare training",
        note=f"median of {rounds}",
    )  # fmt: skip


def bench_auc(p: Params, data, device, figures: Figures) -> None:
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
    auc = f"{ev['test_auc']:.4f} test AUC"
    figures.add("kt_test_auc_vs_pfa", ev["test_auc"] / pfa["auc"], ">= 1.0",
                labdeck=auc, baseline=f"{pfa['auc']:.4f} PFA")  # fmt: skip
    figures.add("kt_test_auc_vs_frequency", ev["test_auc"] / freq["auc"], "> 1.0",
                labdeck=auc, baseline=f"{freq['auc']:.4f} per-skill frequency")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--students", type=int, default=None, help="simulated students (epoch part)")
    ap.add_argument("--skip-auc", action="store_true")
    ap.add_argument("--quick", action="store_true", help="2 rounds, 500 students, no AUC part")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.skip_auc = 2, True
        args.students = args.students or 500
    torch.set_num_threads(args.threads)
    device = configure_determinism()
    figures = Figures("bench_kt")
    p = Params(**({"sim_num_students": args.students} if args.students else {}))
    data = load_data(p)
    print(f"kind defaults: {data.describe()}; device {device}; {args.threads} thread(s)")
    bench_epoch(p, data, device, args.rounds, figures)
    if not args.skip_auc:
        demo = demo_params()
        bench_auc(demo, load_data(demo), device, figures)
    figures.finish()


if __name__ == "__main__":
    main()
