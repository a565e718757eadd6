"""Evaluation of a trained run: the best checkpoint on the held-out test students.

Runs at the end of training and again on demand (`commands.eval_explicit` in
config.json). It rebuilds data and model from the parameters it is given, so the
architecture and data values must equal training's; the explicit command names
them all. Writes artifacts/eval_results.json, artifacts/config_eval.json and
artifacts/metrics_epoch_eval.csv.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any

import torch

from ...errors import UserError
from ...jsonio import write_json_atomic
from .config import Params
from .data import KTData
from .mastery import bkt_known, blended, choose_weight, uses_blend
from .semantics import (
    collect,
    per_student_correlations,
    prediction_metrics,
    true_mastery_correlation,
)
from .train import BEST_FILE, STATE_FILE, build_model

BEST_DIR = "best"
LATEST_DIR = "latest"
EVAL_RESULTS = "eval_results.json"
EVAL_CONFIG = "config_eval.json"
EPOCH_CSV = "metrics_epoch_eval.csv"


def load_best(
    run_dir: Path, p: Params, num_c: int, device: torch.device
) -> tuple[torch.nn.Module, int]:
    path = run_dir / "checkpoints" / BEST_DIR / BEST_FILE
    if not path.is_file():
        raise UserError(f"{path}: no best checkpoint; the run has not finished an epoch yet")
    model = build_model(p, num_c, device)
    blob = torch.load(path, map_location=device, weights_only=True)
    try:
        model.load_state_dict(blob["model"])
    except RuntimeError as exc:
        first = str(exc).splitlines()[1].strip() if "\n" in str(exc) else str(exc)
        raise UserError(
            f"{path}: checkpoint does not fit the model these parameters describe ({first}); "
            "use the eval_explicit command from config.json"
        ) from None
    return model, int(blob["epoch"])


def evaluate_model(
    model: torch.nn.Module, data: KTData, p: Params, device: torch.device
) -> dict[str, Any]:
    test = collect(model, data.test, p.batch_size, device)
    valid = collect(model, data.valid, p.batch_size, device)
    test_auc, test_acc = prediction_metrics(test)
    valid_auc, valid_acc = prediction_metrics(valid)
    estimate: dict[str, Any] = {"mastery_estimate": "head"}
    if uses_blend(model, p.mastery_estimate):
        weight = choose_weight(valid, *bkt_known(model, data.valid, p.batch_size, device))
        estimate = {
            "mastery_estimate": p.mastery_estimate,
            "mastery_head_weight": weight,
            "test_head_true_mastery_correlation": true_mastery_correlation(test),
        }
        test = blended(test, bkt_known(model, data.test, p.batch_size, device)[0], weight)
    bounded = test.rows(slice(0, p.max_correlation_students))  # the same pass, fewer students
    corr = per_student_correlations(bounded)
    return {
        "valid_auc": valid_auc,
        "valid_acc": valid_acc,
        "test_auc": test_auc,
        "test_acc": test_acc,
        "test_mastery_correlation": corr["mastery_correlation"],
        "test_gain_correlation": corr["gain_correlation"],
        "test_correlation_students": corr["correlation_students"],
        "test_true_mastery_correlation": true_mastery_correlation(test),
        **estimate,
    }


def training_history(run_dir: Path, device: torch.device) -> list[dict[str, Any]]:
    path = run_dir / "checkpoints" / LATEST_DIR / STATE_FILE
    if not path.is_file():
        return []
    return torch.load(path, map_location=device, weights_only=True)["state"]["history"]


def write_epoch_csv(path: Path, history: list[dict[str, Any]]) -> None:
    """One row per epoch: losses, validation metrics and the scalar trajectory fields."""
    rows = []
    for entry in history:
        row = {k: entry[k] for k in ("epoch", "train_loss", "val_auc", "val_accuracy")}
        row.update({f"loss_{k}": v for k, v in entry["train_loss_components"].items()})
        for k, v in entry["trajectory"].items():
            if k == "loss_shares":
                row.update({f"share_{s}": x for s, x in v.items()})
            elif k != "epoch" and not isinstance(v, list):
                row[k] = v
        rows.append(row)
    fields = list(rows[0]) if rows else ["epoch"]
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)


def evaluate_dir(run_dir: Path, p: Params, data: KTData | None = None) -> dict[str, Any]:
    from .data import load_data
    from .train import configure_determinism

    device = configure_determinism()
    data = data or load_data(p)
    model, epoch = load_best(run_dir, p, data.num_c, device)
    results = {"best_epoch": epoch, **evaluate_model(model, data, p, device)}
    results["timestamp"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    artifacts = run_dir / "artifacts"
    artifacts.mkdir(exist_ok=True)
    write_json_atomic(artifacts / EVAL_RESULTS, results)
    write_json_atomic(artifacts / EVAL_CONFIG, {"run_dir": str(run_dir), "params": p.model_dump()})
    write_epoch_csv(artifacts / EPOCH_CSV, training_history(run_dir, device))
    return results
