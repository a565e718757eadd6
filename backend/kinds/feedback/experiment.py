"""The `feedback` kind: process → finetune → evaluate, each resumable (seed 002).

Stage inputs: processing reads `conversations` (or the bundled 30). Fine-tuning reads
`training_input` or this run's processed conversations. Evaluation compares `model1`
(default: the base `model`) with `model2` (default: this run's fine-tuned model) on
`test_conversations` or on conversations held out of processing (the first `test_size`
of a seeded shuffle), so a fine-tune is never judged on what it was trained on.

Final metrics: `processed`, `final_loss` (local) and the evaluation tally.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

from ...errors import UserError
from ...jsonio import read_json
from ...providers import ApiStats, ChatProvider, chat_provider
from ..base import DryRun, RunContext
from . import evaluate as ev
from . import finetune as ftm
from . import process as pr
from .config import Params
from .conversations import BUNDLED, Conversation, read_conversations, read_processed
from .estimate import estimate
from .telemetry import StageMeter
from .trainset import check_training_jsonl, write_training_jsonl

TRAINING_FILE = "training.jsonl"
PROCESSED_FILE = "processed.json"


def split(
    params: Params, convs: list[Conversation]
) -> tuple[list[Conversation], list[Conversation]]:
    """(to process, held out for testing). Nothing is held out when tests come from a file
    or when there is no evaluate stage; at most half the conversations are held out."""
    hold = (
        params.test_size if ("evaluate" in params.stages and not params.test_conversations) else 0
    )
    hold = min(hold, len(convs) // 2)  # never more than half: the rest must train the model
    order = list(range(len(convs)))
    random.Random(params.seed).shuffle(order)
    held = set(order[:hold])
    rest = [c for i, c in enumerate(convs) if i not in held]
    tests = [convs[i] for i in sorted(held)]
    return (rest[: params.n] if params.n else rest), tests


class Providers:
    """Builds chat providers for the run, sharing one ApiStats so the dashboard sees one rate."""

    def __init__(self, ctx: RunContext, params: Params) -> None:
        self.ctx, self.params = ctx, params
        self.stats = ApiStats() if params.provider == "together" else None

    def chat(self, model: str, adapter: str | None = None) -> ChatProvider:
        p = self.params
        if p.provider == "together":
            if adapter:
                raise UserError(
                    f"model {model} + adapter {adapter}: a local LoRA adapter needs provider = local"
                )
            return chat_provider(
                "together",
                model,
                base_url=p.base_url or None,
                concurrency=p.concurrency,
                delay=p.delay,
                requests_per_minute=p.requests_per_minute,
                max_retries=p.max_retries,
                backoff=p.backoff,
                timeout=p.request_timeout,
                seed=p.seed,
                stats=self.stats,
            )
        return chat_provider(
            "local",
            model,
            adapters=[adapter] if adapter else [],
            dtype=p.dtype,
            device_map=None if p.device_map == "none" else p.device_map,
            start_batch_size=p.start_batch_size,
            max_batch_size=p.max_batch_size,
            on_batch=self.ctx.batch,
        )

    def meter(self) -> StageMeter:
        return StageMeter(self.ctx, self.stats)


def _conversations(ctx: RunContext, params: Params) -> list[Conversation]:
    path = ctx.input_path("conversations") or (
        Path(params.conversations) if params.conversations else BUNDLED
    )
    return read_conversations(path)


def _training_records(
    ctx: RunContext, params: Params, convs: list[Conversation]
) -> list[dict[str, Any]]:
    path = ctx.input_path("training_input")
    records = read_processed(path) if path else pr.processed_records(ctx, convs)
    if not records:
        raise UserError(
            "finetune: no processed conversations (run the process stage or set training_input)"
        )
    return records[: params.max_conversations] if params.max_conversations else records


def _tests(ctx: RunContext, params: Params, held_out: list[Conversation]) -> list[ev.TestPrompt]:
    path = ctx.input_path("test_conversations")
    if path is not None:
        recs = read_processed(path)[: params.test_size]
        return [ev.TestPrompt(str(r["conversation_id"]), r["conversation_context"]) for r in recs]
    return [ev.TestPrompt(c.id, c.context) for c in held_out]


def _copy_out(params: Params, files: list[Path]) -> None:
    if not params.output:
        return
    out = Path(params.output).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    for f in files:
        if f.exists():
            shutil.copyfile(f, out / f.name)


def run(ctx: RunContext) -> dict[str, float]:
    params: Params = ctx.params  # type: ignore[assignment]
    ctx.artifacts_dir.mkdir(parents=True, exist_ok=True)
    convs = _conversations(ctx, params)
    to_process, held_out = split(params, convs)
    if held_out and len(held_out) < params.test_size:
        ctx.warn(
            f"test_size={params.test_size} but {len(convs)} conversations: holding out "
            f"{len(held_out)} (at most half) for testing"
        )
    providers = Providers(ctx, params)
    final: dict[str, float] = {}
    exported: list[Path] = []

    if "process" in params.stages:
        chat = providers.chat(params.generation_model)
        try:
            pr.run_process(ctx, params, to_process, chat, providers.meter())
        finally:
            chat.close()
        records = pr.processed_records(ctx, to_process)
        pr.export(records, ctx.artifacts_dir / PROCESSED_FILE)
        exported.append(ctx.artifacts_dir / PROCESSED_FILE)
        final["processed"] = float(len(records))

    if "finetune" in params.stages:
        done = ftm.recorded(ctx, ftm.DONE)
        if done is None:
            records = _training_records(ctx, params, to_process)
            train_path = ctx.artifacts_dir / TRAINING_FILE
            if not ctx.is_done(ftm.UPLOAD):  # once uploaded, the file on disk is what was sent
                write_training_jsonl(records, train_path)
            n = check_training_jsonl(train_path)
            ctx.info(
                f"training file {train_path.name}: {n} conversations, weight 1 on the last answer only"
            )
            if params.backend == "together":
                from ...providers.together import TogetherFineTune

                ft = TogetherFineTune(
                    base_url=params.base_url or None,
                    max_retries=params.max_retries,
                    backoff=params.backoff,
                    timeout=params.request_timeout,
                    delay=params.delay,
                    requests_per_minute=params.requests_per_minute,
                    stats=providers.stats,
                )
                try:
                    done = ftm.together_finetune(ctx, params, train_path, ft)
                finally:
                    ft.close()
            else:
                rows = [json.loads(ln) for ln in train_path.read_text().splitlines() if ln.strip()]
                done = ftm.local_finetune(ctx, params, rows)
        if done.get("final_loss") is not None:
            final["final_loss"] = float(done["final_loss"])

    if "evaluate" in params.stages:
        this_model = ctx.artifacts_dir / ftm.MODEL_FILE
        if not params.model2 and not this_model.is_file():
            raise UserError(
                "evaluate: model2 is empty and this run has no fine-tuned model (add the finetune stage or set model2)"
            )
        if (
            not params.model2
            and read_json(this_model).get("backend") == "together"
            and not read_json(this_model).get("name")
        ):
            raise UserError(
                "evaluate: this run's fine-tune job was not followed to its end (monitor = false); set model2"
            )
        refs = (
            ev.resolve_model(params.model1, ctx.input_path("model1"), params.model, None),
            ev.resolve_model(
                params.model2,
                ctx.input_path("model2"),
                params.model,
                None if params.model2 else this_model,
            ),
        )
        tests = _tests(ctx, params, held_out)
        for slot, ref in enumerate(refs, start=1):
            chat = providers.chat(ref.name, ref.adapter)
            try:
                ev.run_answers(ctx, params, slot, ref, tests, chat, providers.meter())
            finally:
                chat.close()
        judge = providers.chat(params.judge)
        try:
            summary = ev.run_judge(ctx, params, tests, refs, judge, providers.meter())
        finally:
            judge.close()
        exported.append(ev.write_summary(ctx, summary))
        m = summary["metrics"]
        for name in ev.TALLY_METRICS:
            if m[name] is not None:  # no rate over zero readable prompts
                final[name] = float(m[name])
    _copy_out(params, exported)
    if providers.stats is not None:
        snap = providers.stats.snapshot()
        final["api_requests"] = float(snap["requests"] or 0)
        final["api_retries"] = float(snap["retries"] or 0)
    return final


def dry_run(params: Params) -> DryRun:
    convs = read_conversations(
        Path(params.conversations).expanduser()
        if params.conversations and not params.conversations.startswith("run:")
        else BUNDLED
    )
    to_process, held = split(params, convs)
    lines = [f"stages: {', '.join(params.stages)}"]
    units = 0
    if "process" in params.stages:
        lines.append(
            f"process: {len(to_process)} conversations ({params.method}) with {params.provider}:{params.generation_model}"
        )
        units += len(to_process)
    if "finetune" in params.stages:
        lines.append(
            f"finetune: {params.backend} {'full' if params.full else 'LoRA'} of {params.model}, {params.epochs} epochs, lr {params.learning_rate:g}"
        )
        units += 1
    if "evaluate" in params.stages:
        n = params.test_size if params.test_conversations else len(held)
        lines.append(f"evaluate: {n} prompts, 2 answers + 2 verdicts each, judge {params.judge}")
        units += 4 * n
    tests = (params.test_size if params.test_conversations else len(held)) or 0
    memory, seconds, more = estimate(params, to_process, tests)
    return DryRun(units=units, memory_bytes=memory, seconds=seconds, lines=lines + more)
