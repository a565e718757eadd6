"""Checkpoint evaluation: sampled answers to broad questions, per-layer activations, judge
scores, and the per-checkpoint summary (the seed's `checkpoint_N_eval.csv`).

Every piece is a ledger unit, so a kill loses at most the batch in hand:

- ("answer", step, question id, sample): one sampled answer, drawn from its own
  generator seeded by (seed, step, question id, sample): distinct samples, and the same
  text whatever the batch size, an out-of-memory retry or a resume.
- ("activations", step): the mean residual-stream activation over the answer's tokens,
  per layer and answer, written to `checkpoint_<step>_activations.npz` before the record.
- ("judge", step, question id, sample): alignment and coherence verdicts.
- ("checkpoint", step): the checkpoint's summary row; its `checkpoint` event fills the
  dashboard's table.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...jsonio import write_atomic, write_json_atomic
from ...judges.score import Verdict
from ...ledger import unit_key
from ...training import assistant_spans
from .config import Params
from .data import Question
from .rates import misaligned, rate_metrics


@dataclass(frozen=True)
class Answer:
    step: int
    question: Question
    sample: int
    text: str

    @property
    def key(self) -> str:
        return unit_key("answer", self.step, self.question.id, self.sample)


def answer_slots(questions: Sequence[Question], samples: int) -> list[tuple[Question, int]]:
    return [(q, s) for q in questions for s in range(samples)]


def answer_key(step: int, question: Question, sample: int) -> str:
    return unit_key("answer", step, question.id, sample)


def generate_answers(
    model: Any,
    tok: Any,
    slots: Sequence[tuple[Question, int]],
    gen: Any,
    controller: Any,
    seed: int,
    step: int,
    on_batch: Callable[[list[tuple[int, str, int, float, int]]], None],
) -> None:
    """Sample an answer per slot; `on_batch([(slot index, text, tokens, seconds, size)])`.

    Each row draws from its own generator seeded by (seed, step, question, sample) — the
    answer's ledger key — so k samples of a question are k independent draws, and a
    batch of any size, an out-of-memory retry or a resume gives every answer the same
    text (backend/sampling.py).
    """
    from ...generation import generate_batch
    from ...sampling import row_seed

    indexed = list(enumerate(slots))

    def work(chunk: list[tuple[int, tuple[Question, int]]]) -> list[Any]:
        return generate_batch(
            model,
            tok,
            [q.prompt(s) for _, (q, s) in chunk],
            gen,
            row_seeds=[row_seed(seed, answer_key(step, q, s)) for _, (q, s) in chunk],
        )

    for batch in controller.iter_batches(indexed, work):
        on_batch(
            [
                (i, g.text, g.tokens_out, g.seconds, batch.size)
                for (i, _), g in zip(batch.items, batch.result, strict=True)
            ]
        )


# --------------------------------------------------------------------------- activations


def response_activations(
    model: Any,
    tok: Any,
    pairs: Sequence[tuple[Any, str]],
    layers: Sequence[int] | None,
    controller: Any,
    max_len: int = 4096,
) -> np.ndarray:
    """(answers, layers, hidden) float32: each layer's output averaged over the answer's tokens.

    The answer's tokens are found exactly as the trainer finds what it trains on (the
    character span the chat template gives the assistant turn).
    """
    import torch

    device = next(model.parameters()).device

    def encode(q: Any, a: str) -> tuple[list[int], list[bool]]:
        asked = [{"role": "user", "content": q}] if isinstance(q, str) else list(q)
        msgs = [*asked, {"role": "assistant", "content": a}]
        text, spans = assistant_spans(tok, msgs, "last_assistant")
        enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
        ids = list(enc["input_ids"])[:max_len]
        start, end = spans[0]
        keep = [s >= start and s < end and e > s for s, e in enc["offset_mapping"][: len(ids)]]
        if not any(keep):  # an empty answer: use the last token (the turn's end)
            keep[-1] = True
        return ids, keep

    def work(chunk: list[tuple[str, str]]) -> np.ndarray:
        encs = [encode(q, a) for q, a in chunk]
        width = max(len(ids) for ids, _ in encs)
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        ids = torch.full((len(encs), width), pad, dtype=torch.long)
        att = torch.zeros((len(encs), width), dtype=torch.long)
        sel = torch.zeros((len(encs), width), dtype=torch.float32)
        for i, (row, keep) in enumerate(encs):
            ids[i, : len(row)] = torch.tensor(row)
            att[i, : len(row)] = 1
            sel[i, : len(row)] = torch.tensor(keep, dtype=torch.float32)
        with torch.inference_mode():
            out = model(
                input_ids=ids.to(device), attention_mask=att.to(device), output_hidden_states=True
            )
        hidden = out.hidden_states[1:]  # the output of every decoder layer
        chosen = layers if layers else range(len(hidden))
        w = sel.to(device)[:, :, None]
        means = [((hidden[layer].float() * w).sum(1) / w.sum(1)).cpu().numpy() for layer in chosen]
        return np.stack(means, axis=1)

    parts = [b.result for b in controller.iter_batches(list(pairs), work)]
    return np.concatenate(parts, axis=0) if parts else np.zeros((0, 0, 0), np.float32)


def save_activations(path: Path, acts: np.ndarray, layers: Sequence[int], keys: list[str]) -> None:
    """Write the npz through a temporary file and a rename: a kill never leaves half of one."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        np.savez_compressed(
            fh, activations=acts.astype(np.float16), layers=np.array(layers), keys=np.array(keys)
        )
    tmp.replace(path)


# --------------------------------------------------------------------------- summaries

EVAL_COLUMNS = (
    "question_id", "question", "sample", "answer", "aligned", "coherent", "misaligned",
    "aligned_method", "coherent_method", "aligned_mass", "coherent_mass",
)  # fmt: skip


@dataclass
class ScoredAnswer:
    question_id: str
    question: str
    sample: int
    answer: str
    aligned: Verdict
    coherent: Verdict
    misaligned: bool | None  # None: the run's em_rate convention does not count it

    def row(self) -> dict[str, Any]:
        return {
            "question_id": self.question_id,
            "question": self.question,
            "sample": self.sample,
            "answer": self.answer,
            "aligned": self.aligned.score,
            "coherent": self.coherent.score,
            "misaligned": self.misaligned,
            "aligned_method": self.aligned.method,
            "coherent_method": self.coherent.method,
            "aligned_mass": self.aligned.number_mass,
            "coherent_mass": self.coherent.number_mass,
        }


def score_answer(
    qid: str,
    question: str,
    sample: int,
    answer: str,
    aligned: Verdict,
    coherent: Verdict,
    p: Params,
) -> ScoredAnswer:
    return ScoredAnswer(
        qid,
        question,
        sample,
        answer,
        aligned,
        coherent,
        misaligned(aligned.score, coherent.score, p.em_rate, p.aligned_below, p.coherent_above),
    )


def _mean(values: Sequence[float | None]) -> float | None:
    got = [v for v in values if v is not None]
    return round(float(np.mean(got)), 4) if got else None


def checkpoint_metrics(rows: Sequence[ScoredAnswer], p: Params) -> dict[str, Any]:
    """Misaligned rate under the run's convention (95 % Wilson interval; None when no
    answer counts), both conventions' rates (rates.py), mean scores over scored answers,
    and how many verdicts had no score."""
    unscored_verdicts = sum(v.score is None for r in rows for v in (r.aligned, r.coherent))
    return {
        **rate_metrics(
            [(r.question_id, r.aligned.score, r.coherent.score) for r in rows],
            p.em_rate,
            p.aligned_below,
            p.coherent_above,
        ),
        "aligned": _mean([r.aligned.score for r in rows]),
        "coherent": _mean([r.coherent.score for r in rows]),
        "judge_unparsable": unscored_verdicts,
    }


def write_eval_csv(path: Path, rows: Sequence[ScoredAnswer]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(EVAL_COLUMNS))
    writer.writeheader()
    for r in rows:
        writer.writerow(r.row())
    write_atomic(path, buf.getvalue())


def write_activation_meta(
    path: Path, step: int, layers: Sequence[int], shape: Sequence[int], rows: Sequence[ScoredAnswer]
) -> None:
    write_json_atomic(
        path,
        {
            "step": step,
            "layers": list(layers),
            "shape": list(shape),
            "reduction": "mean over the answer tokens of transformers hidden_states[1:] (each decoder layer output; the last one after the final norm)",
            "question_ids": [r.question_id for r in rows],
            "samples": [r.sample for r in rows],
            "aligned": [r.aligned.score for r in rows],
            "coherent": [r.coherent.score for r in rows],
            "misaligned": [r.misaligned for r in rows],
        },
    )
