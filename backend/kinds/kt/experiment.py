"""The `kt` experiment: train, checkpoint per epoch, evaluate, and write the seed's result files.

Run directory use (beyond the protocol files the runner owns):
- checkpoints/latest/state.pt  weights, optimizer, RNG and TrainState after the last
  finished epoch (resume starts here); checkpoints/best/model.pt  the best-val-AUC weights;
- artifacts/results.json and artifacts/repro_results_<timestamp>.json  final numbers
  plus `train_history.semantic_trajectory` (the seed's layout); artifacts/eval_results.json,
  config_eval.json, metrics_epoch_eval.csv (evaluation); artifacts/trajectories.png.

Work units are epochs, keyed `["epoch", n]`. A resumed run loads checkpoints/latest,
records any epoch that was checkpointed but not yet recorded (a kill between the
two), and continues with the next epoch, so its records and final metrics equal an
uninterrupted run's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ... import distributed
from ...errors import UserError
from ...jsonio import write_json_atomic
from ...ledger import unit_key
from ...runs import Run
from ...units import format_number
from ..base import DryRun, RunContext, StopRequested
from .config import Params, is_synthetic
from .data import load_data
from .evaluate import BEST_DIR, LATEST_DIR, evaluate_dir
from .model import count_parameters
from .plot import plot_trajectory

EVAL_KEY = unit_key("eval")


def _publish(ctx: RunContext, entry: dict[str, Any]) -> None:
    """Events and the ledger record of one finished (and already checkpointed) epoch."""
    epoch = entry["epoch"]
    ctx.metric("train_loss", entry["train_loss"], epoch=epoch)
    for name, value in entry["train_loss_components"].items():
        ctx.metric(f"train_loss.{name}", value, epoch=epoch)
    ctx.metric("val_auc", entry["val_auc"], epoch=epoch)
    ctx.metric("val_accuracy", entry["val_accuracy"], epoch=epoch)
    ctx.trajectory(entry["trajectory"])
    ctx.checkpoint(
        epoch,
        Path("checkpoints") / LATEST_DIR,
        {
            "val_auc": entry["val_auc"],
            "val_accuracy": entry["val_accuracy"],
            "best": entry["improved"],
        },
    )
    ctx.record(unit_key("epoch", epoch), entry)
    ctx.progress(epoch)


def best_auc_text(best: float | None) -> str:
    """The best validation AUC for a log line: the trainer holds -1 until an epoch past
    the constraint warm-up has been selected, which is "none yet", not a number."""
    return f"{best:.4f}" if best is not None and best >= 0 else "none yet"


def _final_metrics(state: Any, ev: dict[str, Any]) -> dict[str, float]:
    """The numbers `labdeck compare` tabulates (the seed's comparison table, in the
    snake_case every kind uses; config.RENAMED_METRICS maps the names older runs wrote)."""
    values = {
        "best_val_auc": state.best_val_auc,
        "best_val_accuracy": state.best_val_accuracy,
        "mastery_correlation": ev["test_mastery_correlation"],
        "gain_correlation": ev["test_gain_correlation"],
        "test_auc": ev["test_auc"],
        "test_accuracy": ev["test_acc"],
        "true_mastery_correlation": ev["test_true_mastery_correlation"],
        # with mastery_estimate = "bkt_blend": the head alone, beside the blend above
        "head_true_mastery_correlation": ev.get("test_head_true_mastery_correlation"),
        "best_epoch": state.best_epoch,
    }
    return {k: float(v) for k, v in values.items() if v is not None}


def _write_results(
    ctx: RunContext, trainer: Any, ev: dict[str, Any], final: dict[str, float]
) -> None:
    history = trainer.state.history
    results = {
        "experiment_id": ctx.run.id,
        "config_md5": ctx.run.config.get("md5"),
        "params": ctx.params.model_dump(),
        "data": trainer.data.describe(),
        "best_val_auc": trainer.state.best_val_auc,
        "best_epoch": trainer.state.best_epoch,
        "final_metrics": final,
        "eval": ev,
        "train_history": {
            "epochs": [{k: v for k, v in e.items() if k != "trajectory"} for e in history],
            "semantic_trajectory": [e["trajectory"] for e in history],
        },
    }
    write_json_atomic(ctx.artifacts_dir / "results.json", results)
    stamp = time.strftime("%Y%m%d_%H%M%S")
    write_json_atomic(ctx.artifacts_dir / f"repro_results_{stamp}.json", results)


def _prefit_progress(ctx: RunContext) -> Callable[[int, int], None]:
    """The skip-term prefit as a phase of its own, one unit per L-BFGS iteration (a
    long fit shows its pace and the time left instead of a silent minute)."""
    last = -1

    def report(done: int, most: int) -> None:
        nonlocal last
        if last < 0:
            ctx.phase("prefit", most)
        if done != last:
            last = done
            ctx.progress(done)

    return report


def run(ctx: RunContext) -> dict[str, float]:
    from .train import Trainer, configure_determinism

    p: Params = ctx.params
    device = configure_determinism()
    data = load_data(p)
    ctx.info(data.describe())
    trainer = Trainer(p, data, device)
    if trainer.load_latest(ctx.checkpoints_dir / LATEST_DIR):
        ctx.info(
            f"resuming after epoch {trainer.state.epoch} "
            f"(best val AUC {best_auc_text(trainer.state.best_val_auc)})"
        )
    elif trainer.fit_skips(_prefit_progress(ctx)) is not None:
        ctx.info(trainer.prefit.describe())
    for entry in trainer.state.history:
        if not ctx.is_done(unit_key("epoch", entry["epoch"])):
            _publish(ctx, entry)

    ctx.phase("train", p.epochs)
    ctx.progress(trainer.state.epoch)
    while not trainer.finished():
        if distributed.any_rank(ctx.should_stop()):  # every rank stops at the same epoch
            raise StopRequested()
        epoch = trainer.state.epoch + 1
        step0 = (epoch - 1) * -(-len(data.train) // p.batch_size)

        def on_batch(i: int, n: int, total: Any, epoch: int = epoch, step0: int = step0) -> None:
            if i % p.monitor_frequency == 0 or i == n:
                ctx.metric("batch_loss", float(total.detach()), step=step0 + i)
                ctx.progress(epoch - 1, batch=i, batches=n)

        entry = trainer.run_epoch(on_batch)
        if entry["improved"]:
            with ctx.stage_checkpoint(BEST_DIR) as folder:
                trainer.save_best(folder)
        with ctx.stage_checkpoint(LATEST_DIR) as folder:
            trainer.save_latest(folder)
        _publish(ctx, entry)
        ctx.info(
            f"epoch {entry['epoch']}: loss {entry['train_loss']:.4f} val AUC {entry['val_auc']:.4f}"
            f" mastery corr {format_number(entry['trajectory']['mastery_correlation'])}"
        )
    if trainer.state.epoch < p.epochs:
        ctx.end_phase(
            trainer.state.epoch,
            f"early stop: no better val AUC for {p.patience} epochs "
            f"(best {best_auc_text(trainer.state.best_val_auc)} at epoch {trainer.state.best_epoch})",
        )

    ctx.phase("eval", 1)
    ev = evaluate_dir(ctx.run_dir, p, data)
    for name in ("test_auc", "test_acc", "test_mastery_correlation", "test_gain_correlation"):
        ctx.metric(name, ev[name], epoch=trainer.state.epoch)
    if not ctx.is_done(EVAL_KEY):
        ctx.record(EVAL_KEY, ev)
    ctx.progress(1)
    final = _final_metrics(trainer.state, ev)
    _write_results(ctx, trainer, ev, final)
    plot_trajectory(
        [e["trajectory"] for e in trainer.state.history],
        ctx.artifacts_dir / "trajectories.png",
        title=ctx.run.id,
    )
    return final


def evaluate_run(
    ctx_or_run_dir: RunContext | Run | Path | str, params: Params | dict[str, Any]
) -> dict[str, Any]:
    """`labdeck eval RUN`: the best checkpoint on the test set, with `params` (config.json's,
    plus any `--set`); writes eval_results.json and metrics_epoch_eval.csv into artifacts/."""
    if isinstance(ctx_or_run_dir, RunContext):
        run_dir = ctx_or_run_dir.run_dir
    elif isinstance(ctx_or_run_dir, Run):
        run_dir = ctx_or_run_dir.path
    else:
        run_dir = Path(ctx_or_run_dir)
    if not isinstance(params, Params):
        try:
            params = Params.model_validate(params)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(x) for x in err["loc"])
            raise UserError(f"{run_dir}: eval parameter {where}: {err['msg']}") from None
    return evaluate_dir(run_dir, params)


def dry_run(params: Params) -> DryRun:
    if is_synthetic(params):
        per = -(-params.sim_seq_len // params.seq_len)
        rows, num_c = params.sim_num_students * per, params.sim_num_skills
        source = f"synthetic: {params.sim_num_students} students x {params.sim_seq_len} steps"
    else:
        from .pykt import peek_pykt

        rows, num_c = peek_pykt(params)
        source = f"pyKT {Path(params.data_dir) / params.dataset}: {rows} train/valid sequences"
    n_params = count_parameters(num_c, params)
    b, t, d = params.batch_size, params.seq_len, params.d_model
    # weights + grads + two Adam moments, and per block ~12 activations of [B, T, d] plus attention
    activations = params.num_encoder_blocks * (12 * b * t * d + 2 * params.n_heads * b * t * t)
    if params.practice_skip:  # the skill-match matrix and four count maps
        activations += 6 * b * t * t
    if params.bkt_skip:  # the filter keeps every step's per-skill state for backward
        activations += 3 * b * t * num_c
    memory = 4 * (4 * n_params + activations + 8 * b * t * num_c)
    return DryRun(
        units=params.epochs,
        memory_bytes=memory,
        lines=[
            source,
            f"{num_c} skills; model {n_params / 1e6:.2f} M parameters "
            f"({params.num_encoder_blocks} blocks x d_model {d})",
            f"{params.epochs} epochs, batch {b}, fold {params.fold}; units are epochs",
        ],
    )
