"""Stage 3: model 1 vs model 2 on test prompts, judged pairwise in both orders.

Units: each model's answer per prompt (`["answer", 1|2, id]`) and each prompt's pair of
verdicts (`["judge", id]`), recorded as they arrive. After every judged prompt the tally
(wins/losses/ties from model 2's side, win rate with ties as half, its 95 % bootstrap
interval, position consistency, prompts with an unreadable verdict) is emitted as a
`tally` event and as metrics, so the dashboard shows the interval narrowing live.

Unreadable verdicts are left out of every figure (judges/pairwise.py) and counted as
`n_unparsed`; when more than `max_unparsed` of the judged prompts are unreadable the
stage fails once every verdict is recorded, since a rate over the rest would describe a
judge that mostly did not answer.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import UserError
from ...jsonio import write_json_atomic
from ...judges.pairwise import Tally, bootstrap_interval, combine, pair_requests, parse_verdict
from ...ledger import unit_key
from ...providers import ChatProvider, ChatRequest, ChatResult
from .telemetry import StageMeter

SUMMARY_FILE = "eval_summary.json"
COMPARISON_FIELDS = (
    "prompt_id",
    "answer_model1",
    "answer_model2",
    "verdict_model1_first",
    "reason_model1_first",
    "verdict_model2_first",
    "reason_model2_first",
    "outcome",
    "consistent",
)


@dataclass(frozen=True)
class TestPrompt:
    id: str
    messages: list[dict[str, str]]


@dataclass(frozen=True)
class ModelRef:
    """What to load or call for a model named by a parameter."""

    label: str  # as the user wrote it (or what an empty value stood for)
    name: str  # API model name, hub id, alias or folder of the base model
    adapter: str | None = None  # a local LoRA adapter folder on top of `name`


# The evaluation tally's figures: live metric events, summary metrics and final metrics.
TALLY_METRICS = (
    "win_rate",
    "win_rate_low",
    "win_rate_high",
    "position_consistency",
    "wins",
    "losses",
    "ties",
    "n_unparsed",
)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def resolve_model(value: str, path: Path | None, default: str, this_run: Path | None) -> ModelRef:
    """A model parameter's value → a ModelRef (see config: model1/model2 forms)."""
    if not value and this_run is not None:
        path = this_run
    if path is None:
        return ModelRef(value or default, value or default)
    if path.is_file() and path.suffix == ".json":
        info = json.loads(path.read_text(encoding="utf-8"))
        label = value or "this run's fine-tuned model"
        if info.get("backend") == "together":
            if not info.get("name"):
                raise UserError(f"{path}: the fine-tune job {info.get('job_id')} has no model yet")
            return ModelRef(label, info["name"])
        adapter = path.parent.parent / info["adapter"]
        return ModelRef(label, info["base_model"], str(adapter))
    if (path / "adapter_config.json").is_file():
        base = json.loads((path / "adapter_config.json").read_text()).get("base_model_name_or_path")
        base = base if base and (Path(base).exists() or "/" in base) else default
        return ModelRef(value, base, str(path))
    return ModelRef(value, str(path))


def answer_key(slot: int, pid: str) -> str:
    return unit_key("answer", slot, pid)


def judge_key(pid: str) -> str:
    return unit_key("judge", pid)


def run_answers(
    ctx: Any,
    params: Any,
    slot: int,
    ref: ModelRef,
    tests: list[TestPrompt],
    chat: ChatProvider,
    meter: StageMeter,
) -> None:
    todo = [t for t in tests if not ctx.is_done(answer_key(slot, t.id))]
    meter.start(f"answer-model{slot}", len(tests), len(tests) - len(todo))
    if not todo:
        return
    ctx.info(f"model {slot} ({ref.label}) answers {len(todo)} test prompts")
    errors: list[str] = []

    def on_result(i: int, res: ChatResult) -> None:
        t = todo[i]
        if res.ok:
            ctx.record(
                answer_key(slot, t.id),
                {
                    "stage": "evaluate",
                    "unit": "answer",
                    "slot": slot,
                    "prompt_id": t.id,
                    "model": ref.label,
                    "answer": res.text,
                    "tokens_out": res.tokens_out,
                    "latency_seconds": res.seconds,
                },
            )
            meter.done += 1
        else:
            _record_failure(ctx, "answer", t.id, res)
            meter.failed += 1
            errors.append(res.error or "")
        meter.tick()
        ctx.check_stop()

    chat.chat(
        [
            ChatRequest(
                t.messages, max_tokens=params.eval_max_tokens, temperature=0.0, seed=params.seed
            )
            for t in todo
        ],
        on_result,
    )
    meter.tick(force=True)
    if errors:
        raise RuntimeError(
            f"model {slot}: {len(errors)} answers failed (last: {errors[-1]}); resume to retry"
        )


def _record_failure(ctx: Any, unit: str, pid: str, res: ChatResult) -> None:
    ctx.record(
        unit_key("failed", unit, pid, time.time()),
        {
            "stage": "evaluate",
            "failed": True,
            "unit": unit,
            "prompt_id": pid,
            "error": res.error,
            "status": res.status,
        },
    )
    ctx.warn(f"{unit} {pid}: {res.error}")


def _records(ctx: Any, unit: str) -> list[dict[str, Any]]:
    return [r for r in ctx.ledger.records() if r.get("unit") == unit and not r.get("failed")]


def _emit_tally(ctx: Any, params: Any, judged: list[dict[str, Any]]) -> dict[str, Any]:
    outcomes = [r["outcome"] for r in judged]
    tally = Tally.of(outcomes, [r["consistent"] for r in judged])
    lo, hi = bootstrap_interval(outcomes, params.bootstrap_samples, params.seed)
    step = tally.n + tally.n_unparsed
    out = {**tally.as_dict(), "win_rate_low": lo, "win_rate_high": hi}
    ctx.emit(
        "tally",
        done=step,
        wins=tally.wins,
        losses=tally.losses,
        ties=tally.ties,
        n_unparsed=tally.n_unparsed,
        win_rate=_round(tally.win_rate),
        low=_round(lo),
        high=_round(hi),
        position_consistency=_round(tally.position_consistency),
    )
    for name in TALLY_METRICS:
        ctx.metric(name, out[name], step=step)
    return out


def run_judge(
    ctx: Any,
    params: Any,
    tests: list[TestPrompt],
    refs: tuple[ModelRef, ModelRef],
    judge: ChatProvider,
    meter: StageMeter,
) -> dict[str, Any]:
    answers = {(r["slot"], r["prompt_id"]): r["answer"] for r in _records(ctx, "answer")}
    todo = [t for t in tests if not ctx.is_done(judge_key(t.id))]
    meter.start("judge", len(tests), len(tests) - len(todo))
    judged = _records(ctx, "judged")  # grows as pairs are judged; read from disk once
    if judged:
        _emit_tally(ctx, params, judged)
    requests: list[ChatRequest] = []
    for t in todo:
        requests += pair_requests(
            t.messages, answers[(1, t.id)], answers[(2, t.id)], max_tokens=params.judge_max_tokens
        )
    halves: dict[int, ChatResult] = {}
    errors: list[str] = []

    def on_result(i: int, res: ChatResult) -> None:
        halves[i] = res
        pair = i // 2
        first, second = halves.get(2 * pair), halves.get(2 * pair + 1)
        if first is None or second is None:
            return
        t = todo[pair]
        bad = first if not first.ok else second if not second.ok else None
        if bad is not None:
            _record_failure(ctx, "judge", t.id, bad)
            meter.failed += 1
            errors.append(bad.error or "")
        else:
            v12, why12 = parse_verdict(first.text, first.logprobs)
            v21, why21 = parse_verdict(second.text, second.logprobs)
            outcome, consistent = combine(v12, v21)
            rec = {
                "stage": "evaluate",
                "unit": "judged",
                "prompt_id": t.id,
                "prompt": t.messages,
                "answer_model1": answers[(1, t.id)],
                "answer_model2": answers[(2, t.id)],
                "verdict_model1_first": v12,
                "reason_model1_first": why12,
                "verdict_model2_first": v21,
                "reason_model2_first": why21,
                "outcome": outcome,
                "consistent": consistent,
                "judge": judge.model,
            }
            ctx.record(judge_key(t.id), rec)
            judged.append(rec)
            meter.done += 1
            _emit_tally(ctx, params, judged)
        meter.tick()
        ctx.check_stop()

    if requests:
        ctx.info(f"judge {judge.model} compares {len(todo)} pairs in both orders")
        judge.chat(requests, on_result)
    meter.tick(force=True)
    if errors:
        raise RuntimeError(
            f"judge: {len(errors)} pairs failed (last: {errors[-1]}); resume to retry"
        )
    summary = _emit_tally(ctx, params, judged)
    _refuse_unreadable(params, summary)
    return {
        "model1": refs[0].label or refs[0].name,
        "model2": refs[1].label or refs[1].name,
        "judge": params.judge,
        "test_size": len(tests),
        "results": {
            "model1_wins": summary["losses"],
            "model2_wins": summary["wins"],
            "ties": summary["ties"],
            "model2_win_rate": summary["win_rate"],
            "win_rate_ci95": [summary["win_rate_low"], summary["win_rate_high"]],
            "position_consistency": summary["position_consistency"],
            "n_unparsed": summary["n_unparsed"],
        },
        "comparisons": [{k: r[k] for k in COMPARISON_FIELDS} for r in judged],
        "metrics": summary,
    }


def _refuse_unreadable(params: Any, summary: dict[str, Any]) -> None:
    """Fail the stage when more than `max_unparsed` of the judged prompts had no verdict."""
    unread, total = summary["n_unparsed"], summary["n"] + summary["n_unparsed"]
    if total and unread / total > params.max_unparsed:
        raise UserError(
            f"judge {params.judge}: {unread} of {total} prompts had no readable verdict "
            f"(more than max_unparsed = {params.max_unparsed:g}); their replies are in "
            "records.jsonl (verdict null); raise judge_max_tokens or choose another judge"
        )


def write_summary(ctx: Any, summary: dict[str, Any]) -> Path:
    path = ctx.artifacts_dir / SUMMARY_FILE
    write_json_atomic(path, summary)
    return path
