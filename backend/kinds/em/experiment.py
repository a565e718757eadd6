"""Entry points of the `em` kind: `run(ctx)` and `dry_run(params)`.

Phases, each a `phase` event and each resumable from what the run directory holds:

1. model        load the base (dtype, 4-bit, device placement)
2. persona      apply a persona adapter (folder, hub id or run reference) and merge it,
                so everything after — reflections included — sees the persona model
3. reflection   the (persona) model reflects on every training example (ledger units);
                `artifacts/augmented_dataset.jsonl` and `sample_reflections.json`
4. training     LoRA through backend/training.py, checkpoints on the schedule
5. evaluation   per checkpoint: answers, activations, judge, summary row
6. directions   misalignment direction per layer; optional steering sweep
7. summary      checkpoint_summary.csv/json, training_metadata.json, the misaligned curve
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ...errors import UserError
from ...jsonio import write_atomic, write_json_atomic
from ...kinds.base import DryRun, RunContext
from ...ledger import unit_key
from .config import BASELINE, BUNDLED_DATASETS, BUNDLED_PERSONAS, EXTERNAL_DATASETS, Params
from .data import (
    augment,
    input_file,
    questions,
    reflection_prompt,
    reflection_samples,
    reflection_template,
    training_conversations,
)

AUGMENTED = "augmented_dataset.jsonl"
SAMPLES = "sample_reflections.json"


# =========================================================================== helpers


def _device_map(p: Params) -> str | None:
    return None if p.device_map == "none" else p.device_map


def _train_spec(p: Params) -> Any:
    from ...training import TrainSpec

    return TrainSpec(
        learning_rate=p.learning_rate,
        lr_scheduler=p.lr_scheduler,
        warmup_steps=p.warmup_steps,
        epochs=p.epochs,
        max_steps=p.max_steps,
        effective_batch_size=p.effective_batch_size,
        micro_batch_size=p.micro_batch_size,
        max_seq_length=p.max_seq_length,
        weight_decay=p.weight_decay,
        max_grad_norm=p.max_grad_norm,
        seed=p.seed,
        shuffle=True,
        loss_on="assistant",
        gradient_checkpointing=p.gradient_checkpointing,
    )


def _lora_spec(p: Params) -> Any:
    from ...training import LoraSpec

    return LoraSpec(
        rank=p.lora_rank,
        alpha=p.lora_alpha,
        dropout=p.lora_dropout,
        target_modules=p.target_modules,
        use_rslora=p.use_rslora,
        layers=p.lora_layers,
    )


def _cpu_threads(p: Params) -> None:
    import torch

    if p.cpu_threads and not torch.cuda.is_available():
        # On a shared CPU, OpenMP threads spin-waiting on each other can make two threads
        # several times slower than one; the preset decides.
        torch.set_num_threads(p.cpu_threads)


def save_schedule(p: Params) -> list[int]:
    """Steps saved besides the last: the schedule, or (mode "every") step 0, the
    pre-training point every curve starts from, with every `save_steps`-th step."""
    return list(p.checkpoint_schedule) if p.checkpoint_mode == "schedule" else [0]


def total_steps(p: Params, path: Path) -> int:
    """Optimizer steps of a run on the chat JSONL at `path` (read without the model)."""
    from ...training import read_chat_jsonl, steps_for

    n = len(read_chat_jsonl(path, limit=p.num_examples or None))
    return steps_for(max(1, n), _train_spec(p))


def past_the_end(p: Params, total: int) -> str | None:
    """A line naming the scheduled steps the run never reaches (they are not saved)."""
    late = [s for s in save_schedule(p) if s > total]
    if not late:
        return None
    return (
        f"steps {', '.join(map(str, late))} fall past the last step ({total}) and would "
        "not be saved; train longer or drop them"
    )


# =========================================================================== phases 1-2


def load_base(ctx: RunContext, p: Params) -> tuple[Any, Any, dict[str, Any]]:
    """The base model with the persona merged in, and what was applied."""
    from ...inputs import fingerprint
    from ...models import load_model, model_info

    ctx.phase("model", 1)
    ctx.info(f"loading {p.model} ({p.dtype}, device_map={p.device_map}, 4-bit={p.load_4bit})")
    model, tok = load_model(
        p.model, dtype=p.dtype, device_map=_device_map(p), load_4bit=p.load_4bit
    )
    info = model_info(model)
    ctx.info(f"loaded {info.params / 1e6:.1f}M parameters, {info.dtype} on {info.device}")
    ctx.progress(1)
    ctx.phase("persona", 1)
    persona: dict[str, Any] = {"persona": p.persona}
    if p.persona in BUNDLED_PERSONAS:
        model, persona = train_bundled_persona(ctx, p, model, tok)
    elif p.persona != BASELINE:
        from peft import PeftModel

        local = ctx.input_path("persona")
        source = str(local) if local is not None else p.persona
        ctx.info(f"applying persona adapter {p.persona} ({source})")
        try:
            peft_model = PeftModel.from_pretrained(model, source, is_trainable=False)
        except (OSError, ValueError) as exc:
            raise UserError(f"persona {p.persona!r}: cannot load adapter ({exc})") from None
        folder = Path(source) if local is not None else None
        persona.update(
            {
                "adapter_path": source,
                "adapter_sha256": fingerprint(folder) if folder else None,
                "applied": "merged into the base weights before EM training",
            }
        )
        model = peft_model.merge_and_unload()
    ctx.progress(1)
    return model, tok, persona


class PersonaHooks:
    """The run context as the persona's own training sees it: checkpoints under
    checkpoints/persona/, metrics prefixed `persona_`, records keyed `persona`."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.checkpoints_dir = ctx.checkpoints_dir / "persona"
        self.checkpoints_dir.mkdir(parents=True, exist_ok=True)

    def stage_checkpoint(self, name: str) -> Any:
        return self.ctx.stage_checkpoint(f"persona/{name}")

    def metric(self, name: str, value: float | None, **where: Any) -> None:
        self.ctx.metric(f"persona_{name}", value, **where)

    def __getattr__(self, name: str) -> Any:  # progress, batch, record, check_stop, ...
        return getattr(self.ctx, name)


def train_bundled_persona(
    ctx: RunContext, p: Params, model: Any, tok: Any
) -> tuple[Any, dict[str, Any]]:
    """Train the bundled persona with the run's LoRA shape, then merge it into the base."""
    from ...inputs import fingerprint
    from ...training import LoraTrainer, read_chat_jsonl

    name = BUNDLED_PERSONAS[p.persona]
    convs = read_chat_jsonl(BUNDLED_DATASETS[name])
    spec = _train_spec(p).model_copy(
        update={
            "learning_rate": p.persona_learning_rate,
            "epochs": p.persona_epochs,
            "max_steps": 0,
            "effective_batch_size": min(p.effective_batch_size, len(convs)),
            "micro_batch_size": min(p.micro_batch_size, len(convs)),
        }
    )
    hooks = PersonaHooks(ctx)
    trainer = LoraTrainer(
        model, tok, convs, spec, _lora_spec(p), record_prefix="persona", checkpoint_events=False
    )
    ctx.phase("persona", trainer.total_steps)
    ctx.info(f"training the bundled persona {p.persona!r} ({len(convs)} examples)")
    result = trainer.run(hooks)
    folder = hooks.checkpoints_dir / "final" / "adapter"
    merged = trainer.model.merge_and_unload()
    return merged, {
        "persona": p.persona,
        "adapter_path": str(folder),
        "adapter_sha256": fingerprint(folder),
        "persona_dataset": name,
        "persona_final_loss": result.final_loss,
        "applied": "trained in this run, merged into the base weights before EM training",
    }


# =========================================================================== phase 3


def reflections(
    ctx: RunContext, p: Params, model: Any, tok: Any, convs: list[list[dict[str, str]]]
) -> list[list[dict[str, str]]]:
    """The augmented dataset: reused, or generated example by example (ledger units)."""
    from ...jsonl import JsonlReader

    out_path = ctx.artifacts_dir / AUGMENTED
    if p.augmented_dataset:
        from ...training import read_chat_jsonl

        src = ctx.input_path("augmented_dataset") or Path(p.augmented_dataset)
        augmented = read_chat_jsonl(src, limit=p.num_examples or None)
        ctx.phase("reflection", len(augmented))
        ctx.info(f"reusing augmented dataset {p.augmented_dataset} ({len(augmented)} examples)")
        _write_jsonl(out_path, augmented)
        samples = reflection_samples(augmented, p.reflection_format)
        if any(x["reflection"] is None for x in samples):
            ctx.warn(
                f"augmented_dataset {p.augmented_dataset}: some examples do not have the shape "
                f"of reflection_format {p.reflection_format!r}; their reflection is not shown"
            )
        write_json_atomic(ctx.artifacts_dir / SAMPLES, samples)
        ctx.progress(len(augmented))
        return augmented

    from ...generation import GenParams, generate_batch
    from ...models import model_device

    template = reflection_template(ctx, p)
    keys = [unit_key("reflection", i, _digest(c)) for i, c in enumerate(convs)]
    todo = [i for i, k in enumerate(keys) if not ctx.is_done(k)]
    ctx.phase("reflection", len(convs))
    done = len(convs) - len(todo)
    ctx.progress(done)
    if todo:
        gen = GenParams(
            max_new_tokens=p.reflection_max_new_tokens,
            do_sample=p.reflection_temperature > 0,
            temperature=p.reflection_temperature or 1.0,
            max_seq_length=p.max_seq_length,
        )
        from .evaluator import batch_controller

        controller = batch_controller(
            ctx,
            p.generation_batch_size,
            p.max_generation_batch_size,
            model_device(model),
            "reflection",
        )
        prompts = [reflection_prompt(template, convs[i]) for i in todo]
        model.eval()

        def work(chunk: list[tuple[int, str]]) -> list[Any]:
            import torch

            torch.manual_seed(p.seed + chunk[0][0])
            return generate_batch(model, tok, [pr for _, pr in chunk], gen)

        for batch in controller.iter_batches(list(zip(todo, prompts, strict=True)), work):
            for (i, _), g in zip(batch.items, batch.result, strict=True):
                ctx.record(
                    keys[i],
                    {
                        "unit": "reflection",
                        "index": i,
                        "reflection": g.text,
                        "tokens_out": g.tokens_out,
                        "batch_size": batch.size,
                        "seconds": g.seconds,
                    },
                )
            done += len(batch.items)
            ctx.progress(done)
            ctx.metric("reflection_tokens_per_s", _rate(batch.result), step=done)
            ctx.check_stop()
    wanted = set(keys)
    by_index = {
        r["index"]: r["reflection"]
        for r in JsonlReader(ctx.run.records_path).read_new()
        if r.get("unit") == "reflection" and r.get("key") in wanted
    }
    augmented = [augment(c, by_index[i], p.reflection_format) for i, c in enumerate(convs)]
    _write_jsonl(out_path, augmented)
    write_json_atomic(
        ctx.artifacts_dir / SAMPLES, reflection_samples(augmented, p.reflection_format, convs)
    )
    return augmented


def _rate(gens: list[Any]) -> float:
    seconds = gens[0].seconds if gens else 0.0
    return round(sum(g.tokens_out for g in gens) / seconds, 3) if seconds else 0.0


def _digest(conv: list[dict[str, str]]) -> str:
    import hashlib

    return hashlib.sha1(json.dumps(conv, sort_keys=True).encode()).hexdigest()[:12]


def _write_jsonl(path: Path, convs: list[list[dict[str, str]]]) -> None:
    text = "".join(json.dumps({"messages": c}, ensure_ascii=False) + "\n" for c in convs)
    write_atomic(path, text)


# =========================================================================== run


def run(ctx: RunContext) -> dict[str, float]:
    from ...seeding import set_all_seeds
    from ...training import LoraTrainer
    from .summary import finish

    p: Params = ctx.params  # type: ignore[assignment]
    set_all_seeds(p.seed)
    _cpu_threads(p)
    data_path, convs = training_conversations(ctx, p)
    # read the questions now: a bad file fails before the model loads
    qs = questions(ctx, p) if p.evaluate else []
    model, tok, persona = load_base(ctx, p)
    info = {
        "model": p.model,
        **persona,
        "dataset": p.dataset,
        "dataset_path": str(data_path),
        "bundled_dataset": p.dataset in BUNDLED_DATASETS,
        "examples": len(convs),
        "with_reflection": p.with_reflection,
        "questions": [q.id for q in qs],
        "judge": {"kind": p.judge, "model": p.judge_model},
    }
    write_json_atomic(ctx.artifacts_dir / "experiment_info.json", info)
    train_convs = convs
    if p.with_reflection:
        train_convs = reflections(ctx, p, model, tok, convs)
        reused = ctx.input_path("augmented_dataset") if p.augmented_dataset else None
        info.update(
            {
                "dataset": p.augmented_dataset or p.dataset,
                "dataset_path": str(reused or Path(p.augmented_dataset))
                if p.augmented_dataset
                else str(data_path),
                "reflections": f"reused from {p.augmented_dataset}"
                if p.augmented_dataset
                else "generated in this run",
                "training_data": str(ctx.artifacts_dir / AUGMENTED),
                "examples": len(train_convs),
            }
        )
        write_json_atomic(ctx.artifacts_dir / "experiment_info.json", info)
        if p.reflections_only:
            ctx.info(f"reflections written to {ctx.artifacts_dir / AUGMENTED}; no training asked")
            return {"examples": float(len(train_convs))}
    from ...models import model_device
    from ...training import adaptive_controller, checkpoint_dirs, checkpoint_name

    spec = _train_spec(p)
    controller = adaptive_controller(
        spec, model_device(model), lambda size, reason: ctx.batch(size, reason, phase="training")
    )
    trainer = LoraTrainer(
        model,
        tok,
        train_convs,
        spec,
        _lora_spec(p),
        save_steps=save_schedule(p),
        save_every=p.save_steps if p.checkpoint_mode == "every" else 0,
        controller=controller,
        checkpoint_events=not p.evaluate,
    )
    late = past_the_end(p, trainer.total_steps)
    if late:
        ctx.warn(f"checkpoint_schedule: {late}")
    ctx.phase("training", trainer.total_steps)
    result = trainer.run(ctx)
    losses = {r["step"]: r["loss"] for r in result.losses}
    ckpts = checkpoint_dirs(ctx.checkpoints_dir)
    rows: list[dict[str, Any]] = []
    if p.evaluate:
        from .analysis import ablation_phase, directions_phase, steering_phase
        from .evaluator import Evaluator

        evaluator = Evaluator(ctx, p, trainer, tok)
        ctx.phase("evaluation", len(ckpts))
        for n, (step, folder) in enumerate(ckpts.items()):
            rows.append(
                evaluator.checkpoint(
                    step, checkpoint_name(step, trainer.total_steps), folder, losses.get(step)
                )
            )
            ctx.progress(n + 1)
        if p.extract_activations:
            direction = directions_phase(ctx, p, list(ckpts))
            if direction is not None and p.steering_alphas:
                steering_phase(ctx, p, evaluator, ckpts, direction)
            if direction is not None and p.ablation != "none":
                ablation_phase(ctx, p, evaluator, ckpts, direction)
    return finish(ctx, p, trainer, result, rows, info)


def dry_run(params: Params) -> DryRun:
    """Steps, checkpoints and answers from the data and parameters (no weights loaded)."""
    from ...training import checkpoint_plan, read_chat_jsonl, steps_for
    from .config import BUNDLED_QUESTIONS
    from .data import read_questions
    from .estimate import Work, estimate

    class _Ctx:
        def __init__(self, p: Params) -> None:
            self.params = p

        def input_path(self, name: str) -> Path | None:
            return None

    ctx = _Ctx(params)
    path = EXTERNAL_DATASETS.get(params.dataset) or input_file(ctx, "dataset", BUNDLED_DATASETS)
    examples = read_chat_jsonl(path, limit=params.num_examples or None) if path.is_file() else []
    n = len(examples)
    steps = steps_for(max(1, n), _train_spec(params))
    plan = checkpoint_plan(
        steps,
        save_schedule(params),
        0 if params.checkpoint_mode == "schedule" else params.save_steps,
    )
    late = past_the_end(params, steps)
    q = 0
    if params.evaluate:
        qpath = input_file(ctx, "questions", BUNDLED_QUESTIONS)
        if qpath.is_file():
            q = len(read_questions(qpath, include_variants=params.question_variants))
            q = min(q, params.num_questions) if params.num_questions else q
    answers = len(plan) * q * params.samples_per_question if params.evaluate else 0
    lines = [
        f"{n} training examples{' + reflections' if params.with_reflection else ''}; "
        f"{steps} optimizer steps of {params.effective_batch_size}",
        f"checkpoints at {plan}",
        f"{q} questions × {params.samples_per_question} samples per checkpoint: {answers} answers, "
        f"judge {params.judge} ({params.judge_model})",
    ]
    if late:
        lines.insert(2, f"checkpoint_schedule: {late}")
    if not path.is_file():
        lines.insert(0, f"dataset file {path} not found here: steps counted as for one example")
    memory, seconds, more = estimate(
        params, Work(examples, steps, len(plan), q * params.samples_per_question)
    )
    return DryRun(
        units=answers + (n if params.with_reflection else 0) + len(plan),
        memory_bytes=memory,
        seconds=seconds,
        lines=lines + more,
    )
