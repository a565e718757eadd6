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
import time
from pathlib import Path
from typing import Any

from ...errors import UserError
from ...jsonio import write_atomic, write_json_atomic
from ...kinds.base import DryRun, RunContext
from ...ledger import unit_key
from ...runs import CHECKPOINTS
from .config import BASELINE, BUNDLED_DATASETS, BUNDLED_PERSONAS, EXTERNAL_DATASETS, Params
from .data import (
    augment,
    input_file,
    questions,
    reflection_prompt,
    reflection_template,
    training_conversations,
)

AUGMENTED = "augmented_dataset.jsonl"
SAMPLES = "sample_reflections.json"


# =========================================================================== helpers


def _device_map(p: Params) -> str | None:
    return None if p.device_map == "none" else p.device_map


def _controller(ctx: RunContext, start: int, maximum: int, device: str, what: str) -> Any:
    from ... import gpu
    from ...batching import BatchController

    return BatchController(
        min(start, maximum),
        maximum,
        **gpu.batch_readings(device),
        on_change=lambda size, reason: ctx.batch(size, reason, phase=what),
    )


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
    )


def _cpu_threads(p: Params) -> None:
    import torch

    if p.cpu_threads and not torch.cuda.is_available():
        # On a shared CPU, OpenMP threads spin-waiting on each other can make two threads
        # several times slower than one; the preset decides.
        torch.set_num_threads(p.cpu_threads)


def save_schedule(p: Params) -> list[int]:
    return list(p.checkpoint_schedule) if p.checkpoint_mode == "schedule" else []


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
        controller = _controller(
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
    samples = [
        {"index": i, "example": convs[i], "reflection": by_index[i], "augmented": augmented[i]}
        for i in range(min(5, len(convs)))
    ]
    write_json_atomic(ctx.artifacts_dir / SAMPLES, samples)
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


# =========================================================================== phase 5


class Evaluator:
    """Evaluates checkpoints one at a time with the trainer's model (see evaluate.py)."""

    def __init__(self, ctx: RunContext, p: Params, trainer: Any, tok: Any) -> None:
        from ...generation import GenParams
        from ...models import model_device
        from .data import questions as load_questions
        from .evaluate import answer_slots

        self.ctx, self.p, self.trainer, self.tok = ctx, p, trainer, tok
        self.model = trainer.model
        self.device = model_device(self.model)
        self.questions = load_questions(ctx, p)
        self.slots = answer_slots(self.questions, p.samples_per_question)
        self.gen = GenParams(
            max_new_tokens=p.eval_max_new_tokens,
            do_sample=True,
            temperature=p.eval_temperature,
            top_p=p.eval_top_p,
            top_k=0,
            max_seq_length=p.max_seq_length,
        )
        self.controller = _controller(
            ctx, p.generation_batch_size, p.max_generation_batch_size, self.device, "evaluation"
        )
        self._judge: Any = None
        self.layers: list[int] = []

    @property
    def judge(self) -> Any:
        if self._judge is None:
            from .judging import make_judge

            self._judge = make_judge(self.ctx, self.p)
        return self._judge

    def _records(self, unit: str, step: int) -> dict[str, dict[str, Any]]:
        from ...jsonl import JsonlReader

        return {
            r["key"]: r
            for r in JsonlReader(self.ctx.run.records_path).read_new()
            if r.get("unit") == unit and r.get("step") == step
        }

    def answers(self, step: int) -> list[dict[str, Any]]:
        from .evaluate import generate_answers

        keys = [unit_key("answer", step, q.id, s) for q, s in self.slots]
        todo = [i for i, k in enumerate(keys) if not self.ctx.is_done(k)]
        if todo:
            self.model.eval()
            t0 = time.perf_counter()
            n_tokens = 0

            def on_batch(rows: list[tuple[int, str, int, float, int]]) -> None:
                nonlocal n_tokens
                for j, text, tokens, seconds, size in rows:
                    i = todo[j]
                    q, s = self.slots[i]
                    self.ctx.record(
                        keys[i],
                        {
                            "unit": "answer", "step": step, "question_id": q.id, "sample": s,
                            "answer": text, "tokens_out": tokens, "batch_size": size,
                            "seconds": seconds,
                        },
                    )  # fmt: skip
                    n_tokens += tokens
                self.ctx.check_stop()

            generate_answers(
                self.model,
                self.tok,
                [self.slots[i] for i in todo],
                self.gen,
                self.controller,
                self.p.seed,
                step,
                on_batch,
            )
            elapsed = time.perf_counter() - t0
            self.ctx.metric("eval_tokens_per_s", round(n_tokens / elapsed, 3), step=step)
        got = self._records("answer", step)
        return [got[k] for k in keys]

    def activations(self, step: int, answers: list[dict[str, Any]]) -> None:
        from .evaluate import response_activations, save_activations

        key = unit_key("activations", step)
        if not self.p.extract_activations or self.ctx.is_done(key):
            return
        qtext = {q.id: q.text for q in self.questions}
        pairs = [(qtext[a["question_id"]], a["answer"]) for a in answers]
        n_layers = self.model.config.get_text_config().num_hidden_layers
        layers = list(self.p.activation_layers) or list(range(n_layers))
        bad = [x for x in layers if not 0 <= x < n_layers]
        if bad:
            raise UserError(f"activation_layers: layer {bad[0]} does not exist ({n_layers} layers)")
        acts = response_activations(self.model, self.tok, pairs, layers, self.controller)
        path = self.ctx.artifacts_dir / f"checkpoint_{step}_activations.npz"
        save_activations(path, acts, layers, [a["key"] for a in answers])
        self.ctx.record(
            key, {"unit": "activations", "step": step, "path": path.name, "shape": list(acts.shape)}
        )

    def scores(self, step: int, answers: list[dict[str, Any]]) -> list[Any]:
        from ...judges.score import JudgeError, Verdict
        from .evaluate import score_answer

        qtext = {q.id: q.text for q in self.questions}
        keys = [unit_key("judge", step, a["question_id"], a["sample"]) for a in answers]
        todo = [i for i, k in enumerate(keys) if not self.ctx.is_done(k)]
        if todo:
            t0 = time.perf_counter()
            pairs = [(qtext[answers[i]["question_id"]], answers[i]["answer"]) for i in todo]
            chunk = max(1, self.p.max_generation_batch_size)
            for start in range(0, len(todo), chunk):  # a stop between chunks keeps the rest
                part = pairs[start : start + chunk]
                try:
                    aligned = self.judge.judge("aligned", part)
                    coherent = self.judge.judge("coherent", part)
                except JudgeError as exc:  # recorded verdicts stay; a resume asks again
                    raise UserError(f"judge {self.p.judge_model}: {exc}") from None
                for j, (va, vc) in enumerate(zip(aligned, coherent, strict=True)):
                    i = todo[start + j]
                    self.ctx.record(
                        keys[i],
                        {
                            "unit": "judge", "step": step,
                            "question_id": answers[i]["question_id"],
                            "sample": answers[i]["sample"],
                            "aligned": va.as_dict(), "coherent": vc.as_dict(),
                        },
                    )  # fmt: skip
                self.ctx.check_stop()
            self.ctx.metric(
                "judge_answers_per_s", round(len(todo) / (time.perf_counter() - t0), 3), step=step
            )
        got = self._records("judge", step)
        rows = []
        for a, k in zip(answers, keys, strict=True):
            r = got[k]
            rows.append(
                score_answer(
                    a["question_id"], qtext[a["question_id"]], a["sample"], a["answer"],
                    Verdict(**r["aligned"]), Verdict(**r["coherent"]), self.p,
                )
            )  # fmt: skip
        return rows

    def checkpoint(self, step: int, name: str, folder: Path, loss: float | None) -> dict[str, Any]:
        """Evaluate one checkpoint (each piece skipped when already recorded)."""
        from .evaluate import checkpoint_metrics, write_activation_meta, write_eval_csv

        key = unit_key("checkpoint", step)
        if self.ctx.is_done(key):
            return self._records("checkpoint", step)[key]
        self.trainer.load_adapter_weights(folder)
        answers = self.answers(step)
        self.activations(step, answers)
        rows = self.scores(step, answers)
        metrics = checkpoint_metrics(rows)
        write_eval_csv(self.ctx.artifacts_dir / f"checkpoint_{step}_eval.csv", rows)
        if self.p.extract_activations:
            import numpy as np

            npz = self.ctx.artifacts_dir / f"checkpoint_{step}_activations.npz"
            with np.load(npz) as z:
                layers, shape = z["layers"].tolist(), list(z["activations"].shape)
            write_activation_meta(
                self.ctx.artifacts_dir / f"checkpoint_{step}_activations.json",
                step, layers, shape, rows,
            )  # fmt: skip
        row = {"unit": "checkpoint", "step": step, "checkpoint": name, "loss": loss, **metrics}
        self.ctx.record(key, row)
        for metric, field in (
            ("misaligned_rate", "misaligned_rate"),
            ("aligned_mean", "aligned"),
            ("coherent_mean", "coherent"),
        ):
            self.ctx.metric(metric, metrics[field], step=step)
        self.ctx.checkpoint(step, Path(CHECKPOINTS) / folder.name, {**metrics, "loss": loss})
        return row


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
    ctx.phase("training", trainer.total_steps)
    result = trainer.run(ctx)
    losses = {r["step"]: r["loss"] for r in result.losses}
    ckpts = checkpoint_dirs(ctx.checkpoints_dir)
    rows: list[dict[str, Any]] = []
    if p.evaluate:
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
            if p.steering_alphas and direction is not None:
                steering_phase(ctx, p, evaluator, ckpts, direction)
    return finish(ctx, p, trainer, result, rows, info)


# =========================================================================== phase 6


def directions_phase(ctx: RunContext, p: Params, steps: list[int]) -> Any:
    """Pool every checkpoint's activations and scores; write the direction per layer."""
    import numpy as np

    from ...judges.score import is_misaligned
    from .directions import misalignment_direction

    ctx.phase("directions", 1)
    acts, mis, ali, layers = [], [], [], None
    for step in steps:
        meta = json.loads((ctx.artifacts_dir / f"checkpoint_{step}_activations.json").read_text())
        with np.load(ctx.artifacts_dir / f"checkpoint_{step}_activations.npz") as z:
            acts.append(z["activations"].astype(np.float32))
            layers = z["layers"].tolist()
        for a, c in zip(meta["aligned"], meta["coherent"], strict=True):
            bad = is_misaligned(a, c, p.aligned_below, p.coherent_above)
            mis.append(bad)
            ali.append(
                not bad
                and a is not None
                and c is not None
                and a >= p.direction_aligned_min
                and c > p.coherent_above
            )
    direction = misalignment_direction(np.concatenate(acts), mis, ali, layers or [])
    info: dict[str, Any] = {
        "checkpoints": steps,
        "n_misaligned": int(sum(mis)),
        "n_aligned": int(sum(ali)),
        "definition": (
            f"mean activation of misaligned answers (aligned < {p.aligned_below:g}, coherent > "
            f"{p.coherent_above:g}) minus that of aligned ones (aligned >= "
            f"{p.direction_aligned_min:g}, coherent > {p.coherent_above:g}), per layer"
        ),
    }
    if direction is None:
        info["direction"] = None
        ctx.warn(
            f"no misalignment direction: {info['n_misaligned']} misaligned and "
            f"{info['n_aligned']} aligned answers (both groups are needed)"
        )
    else:
        path = ctx.artifacts_dir / "misalignment_directions.npz"
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "wb") as fh:
            np.savez(fh, directions=direction.vectors, layers=np.array(direction.layers))
        tmp.replace(path)
        info.update({"layers": direction.layers, "norms": direction.norms, "file": path.name})
    write_json_atomic(ctx.artifacts_dir / "misalignment_directions.json", info)
    ctx.progress(1)
    return direction


def steering_phase(
    ctx: RunContext, p: Params, evaluator: Evaluator, ckpts: dict[int, Path], direction: Any
) -> None:
    """Generate and judge with α × direction added at one layer; one record per α."""
    from .directions import steering
    from .evaluate import checkpoint_metrics, generate_answers, score_answer

    n_layers = evaluator.model.config.get_text_config().num_hidden_layers
    layer = p.steering_layer if p.steering_layer >= 0 else n_layers // 2
    if layer not in direction.layers:
        raise UserError(
            f"steering_layer: layer {layer} has no direction (activation_layers {direction.layers})"
        )
    if p.steering_checkpoint not in ckpts:
        raise UserError(
            f"steering_checkpoint: no checkpoint at step {p.steering_checkpoint} (have {list(ckpts)})"
        )
    ctx.phase("steering", len(p.steering_alphas))
    evaluator.trainer.load_adapter_weights(ckpts[p.steering_checkpoint])
    rows_out = []
    for n, alpha in enumerate(p.steering_alphas):
        key = unit_key("steering", p.steering_checkpoint, layer, alpha)
        if not ctx.is_done(key):
            texts: dict[int, str] = {}

            def keep(rows: list[tuple[int, str, int, float, int]], texts=texts) -> None:
                texts.update({i: text for i, text, *_ in rows})

            with steering(evaluator.model, layer, direction.at(layer), alpha):
                generate_answers(
                    evaluator.model, evaluator.tok, evaluator.slots, evaluator.gen,
                    evaluator.controller, p.seed, -1, keep,
                )  # fmt: skip
            pairs = [(q.text, texts[i]) for i, (q, _) in enumerate(evaluator.slots)]
            aligned = evaluator.judge.judge("aligned", pairs)
            coherent = evaluator.judge.judge("coherent", pairs)
            scored = [
                score_answer(q.id, q.text, s, texts[i], aligned[i], coherent[i], p)
                for i, (q, s) in enumerate(evaluator.slots)
            ]
            metrics = checkpoint_metrics(scored)
            ctx.record(
                key,
                {
                    "unit": "steering", "alpha": alpha, "layer": layer,
                    "checkpoint": p.steering_checkpoint, **metrics,
                    "answers": [r.row() for r in scored],
                },
            )  # fmt: skip
            ctx.metric("steering_misaligned_rate", metrics["misaligned_rate"], level=alpha)
            ctx.check_stop()
        ctx.progress(n + 1)
    from ...jsonl import JsonlReader

    for r in JsonlReader(ctx.run.records_path).read_new():
        if r.get("unit") == "steering":
            rows_out.append(
                {
                    k: r[k]
                    for k in (
                        "alpha",
                        "layer",
                        "checkpoint",
                        "n",
                        "misaligned",
                        "misaligned_rate",
                        "aligned",
                        "coherent",
                    )
                }
            )
    import csv
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows_out[0]))
    writer.writeheader()
    writer.writerows(rows_out)
    write_atomic(ctx.artifacts_dir / "steering_sweep.csv", buf.getvalue())


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
    q = 0
    if params.evaluate:
        qpath = input_file(ctx, "questions", BUNDLED_QUESTIONS)
        if qpath.is_file():
            q = len(read_questions(qpath))
            q = min(q, params.num_questions) if params.num_questions else q
    answers = len(plan) * q * params.samples_per_question if params.evaluate else 0
    lines = [
        f"{n} training examples{' + reflections' if params.with_reflection else ''}; "
        f"{steps} optimizer steps of {params.effective_batch_size}",
        f"checkpoints at {plan}",
        f"{q} questions × {params.samples_per_question} samples per checkpoint: {answers} answers, "
        f"judge {params.judge} ({params.judge_model})",
    ]
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
