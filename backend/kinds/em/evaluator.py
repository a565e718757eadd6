"""Phase 5 of an `em` run: each checkpoint's answers, activations, verdicts and summary row,
every piece a ledger unit (see evaluate.py for the pieces themselves)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ...errors import UserError
from ...kinds.base import RunContext
from ...ledger import unit_key
from ...runs import CHECKPOINTS
from .config import Params


def batch_controller(ctx: RunContext, start: int, maximum: int, device: str, what: str) -> Any:
    """The adaptive batch size of one phase; its changes become `batch` events."""
    from ... import gpu
    from ...batching import BatchController

    return BatchController(
        min(start, maximum),
        maximum,
        **gpu.batch_readings(device),
        on_change=lambda size, reason: ctx.batch(size, reason, phase=what),
    )


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
        self.by_id = {q.id: q for q in self.questions}
        self.slots = answer_slots(self.questions, p.samples_per_question)
        self.gen = GenParams(
            max_new_tokens=p.eval_max_new_tokens,
            do_sample=True,
            temperature=p.eval_temperature,
            top_p=p.eval_top_p,
            top_k=0,
            max_seq_length=p.max_seq_length,
        )
        self.controller = batch_controller(
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
        from .evaluate import answer_key, generate_answers

        keys = [answer_key(step, q, s) for q, s in self.slots]
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
        pairs = [(self.by_id[a["question_id"]].prompt(a["sample"]), a["answer"]) for a in answers]
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

    def verdicts(self, answers: list[dict[str, Any]]) -> list[tuple[Any, Any]]:
        """(aligned, coherent) verdicts of answers ({"question_id", "sample", "answer"}),
        each judged on the wording it was asked with and its question's judge prompts."""
        from ...judges.score import JudgeError

        qs = [self.by_id[a["question_id"]] for a in answers]
        pairs = [(q.paraphrase(a["sample"]), a["answer"]) for q, a in zip(qs, answers, strict=True)]
        try:
            aligned = self.judge.judge("aligned", pairs, [q.judge_template("aligned") for q in qs])
            coherent = self.judge.judge(
                "coherent", pairs, [q.judge_template("coherent") for q in qs]
            )
        except JudgeError as exc:  # recorded verdicts stay; a resume asks again
            raise UserError(f"judge {self.p.judge_model}: {exc}") from None
        return list(zip(aligned, coherent, strict=True))

    def scored(self, answers: list[dict[str, Any]], verdicts: list[tuple[Any, Any]]) -> list[Any]:
        from .evaluate import score_answer

        return [
            score_answer(
                a["question_id"], self.by_id[a["question_id"]].paraphrase(a["sample"]),
                a["sample"], a["answer"], va, vc, self.p,
            )
            for a, (va, vc) in zip(answers, verdicts, strict=True)
        ]  # fmt: skip

    def scores(self, step: int, answers: list[dict[str, Any]]) -> list[Any]:
        from ...judges.score import Verdict

        keys = [unit_key("judge", step, a["question_id"], a["sample"]) for a in answers]
        todo = [i for i, k in enumerate(keys) if not self.ctx.is_done(k)]
        if todo:
            t0 = time.perf_counter()
            chunk = max(1, self.p.max_generation_batch_size)
            for start in range(0, len(todo), chunk):  # a stop between chunks keeps the rest
                part = todo[start : start + chunk]
                for i, (va, vc) in zip(
                    part, self.verdicts([answers[i] for i in part]), strict=True
                ):
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
        verdicts = [(Verdict(**got[k]["aligned"]), Verdict(**got[k]["coherent"])) for k in keys]
        return self.scored(answers, verdicts)

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
        metrics = checkpoint_metrics(rows, self.p)
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
            ("misaligned_rate_ci_low", "ci_low"),
            ("misaligned_rate_ci_high", "ci_high"),
            ("aligned_mean", "aligned"),
            ("coherent_mean", "coherent"),
        ):
            self.ctx.metric(metric, metrics[field], step=step)
        for qid, q in metrics["per_question"].items():  # the per-question view
            self.ctx.metric("question_misaligned_rate", q["misaligned_rate"], step=step, group=qid)
            self.ctx.metric("question_n_scored", q["n_scored"], step=step, group=qid)
        self.ctx.checkpoint(step, Path(CHECKPOINTS) / folder.name, {**metrics, "loss": loss})
        return row
