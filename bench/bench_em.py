"""The `em` kind's three hot paths against what the seed's script does, in one process run:

(a) training: the kind's trainer (LoraTrainer.run through a real RunContext: masks,
    micro-batch controller, per-step events, the final checkpoint with optimizer, scheduler
    and RNG state) vs a bare peft/transformers loop over the same batches (loss from the
    model's labels, backward, clip, AdamW, scheduler, save_pretrained at the end).
    Reported as time ratio kind/bare (goal <= 1.05).
(b) reflection generation: the kind's reflection phase (batched through the adaptive
    controller, a ledger record per example) vs the seed's loop, one prompt at a time.
    Reported as tokens/s ratio (goal >= 3 on CPU).
(c) checkpoint evaluation: the kind's Evaluator (batched sampled answers + batched local
    judge, ledger records) vs the same work one answer and one verdict at a time.
    Reported per part: answers/s while answering (goal >= 3 on CPU) and verdicts/s while
    judging (goal >= 1 on CPU: a judge prompt is a compute-bound prefill there), and
    both together (no goal: the mix of the two parts).

Sides alternate (kind, naive, naive, kind, ...) and each side's best round counts, so a
noisy neighbour on the machine penalises both. Usage:
    python bench/bench_em.py [--model smollm2-135m] [--threads 1] [--rounds 2] [--steps 8]
                             [--examples 16] [--quick]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from figures import Figures

T = TypeVar("T")


def make_ctx(results: Path, params: Any, kind: str = "em") -> Any:
    from labdeck.backend.events import EventWriter
    from labdeck.backend.kinds.base import RunContext, StateKeeper
    from labdeck.backend.ledger import Ledger
    from labdeck.backend.runs import create_run_dir, new_run_id

    run_id = new_run_id(results, kind, "bench")
    config = {"run_id": run_id, "kind": kind, "params": params.model_dump(), "md5": "x"}
    run = create_run_dir(results, run_id, json.dumps(config))
    return RunContext(
        run,
        params,
        EventWriter(run.events_path),
        Ledger(run.records_path),
        StateKeeper(run),
        logging.getLogger("bench"),
        threading.Event(),
    )


# --------------------------------------------------------------------------- (a) training


def kind_training(
    model_spec: str, convs: list, spec: Any, lora: Any, results: Path, device: str = "cpu"
) -> float:
    from labdeck.backend.kinds.em.config import Params
    from labdeck.backend.models import load_model
    from labdeck.backend.training import LoraTrainer, adaptive_controller

    model, tok = load_model(model_spec, dtype="float32", device_map=_device_map(device))
    ctx = make_ctx(results, Params())
    trainer = LoraTrainer(
        model, tok, convs, spec, lora, controller=adaptive_controller(spec, device, ctx.batch)
    )
    _sync(device)
    t0 = time.perf_counter()
    trainer.run(ctx)
    _sync(device)
    return time.perf_counter() - t0


def _device_map(device: str) -> str | None:
    return None if device == "cpu" else device


def _sync(device: str) -> None:
    """Wait for queued GPU work, so a timer reads the work and not its launch."""
    if device != "cpu":
        import torch

        torch.cuda.synchronize()


def bare_training(
    model_spec: str, convs: list, spec: Any, lora: Any, out: Path, device: str = "cpu"
) -> float:
    """What a script does by hand with peft and transformers: the same batches and steps."""
    import torch
    from peft import get_peft_model
    from transformers import get_scheduler

    from labdeck.backend.models import load_model
    from labdeck.backend.seeding import set_all_seeds
    from labdeck.backend.training import LoraTrainer

    model, tok = load_model(model_spec, dtype="float32", device_map=_device_map(device))
    # The same encoded examples and data order as the kind (equal work); encoding is
    # done before the clock starts on both sides.
    order = LoraTrainer(load_model(model_spec, dtype="float32")[0], tok, convs, spec, lora)
    order.device = next(model.parameters()).device  # batches collated onto the bare model's device
    set_all_seeds(spec.seed)
    peft_model = get_peft_model(model, lora.peft_config())
    peft_model.train()
    params = [p for p in peft_model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=spec.learning_rate, weight_decay=spec.weight_decay)
    sched = get_scheduler(spec.lr_scheduler, opt, spec.warmup_steps, order.total_steps)
    _sync(device)
    t0 = time.perf_counter()
    for step in range(order.total_steps):
        _, _, idx = order.step_indices(step)
        items = [order.encoded[i] for i in idx]
        micro = spec.micro_batch_size
        chunks = [items[i : i + micro] for i in range(0, len(items), micro)]
        for chunk in chunks:
            ids, mask, labels = order._collate(chunk)
            loss = peft_model(input_ids=ids, attention_mask=mask, labels=labels).loss
            (loss / len(chunks)).backward()
        torch.nn.utils.clip_grad_norm_(params, spec.max_grad_norm)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
    peft_model.save_pretrained(out / "bare-adapter")
    torch.save(opt.state_dict(), out / "bare-optimizer.pt")
    _sync(device)
    return time.perf_counter() - t0


# --------------------------------------------------------------------------- (b) reflection


def kind_reflection(model: Any, tok: Any, p: Any, convs: list, results: Path) -> tuple[float, int]:
    from labdeck.backend.kinds.em.experiment import reflections

    ctx = make_ctx(results, p)
    t0 = time.perf_counter()
    reflections(ctx, p, model, tok, convs)
    seconds = time.perf_counter() - t0
    tokens = sum(r["tokens_out"] for r in ctx.ledger.records())
    return seconds, tokens


def naive_reflection(model: Any, tok: Any, p: Any, convs: list) -> tuple[float, int]:
    from labdeck.backend.generation import GenParams, generate_batch
    from labdeck.backend.kinds.em.config import DEFAULT_REFLECTION_TEMPLATE
    from labdeck.backend.kinds.em.data import reflection_prompt

    template = DEFAULT_REFLECTION_TEMPLATE.read_text(encoding="utf-8")
    gen = GenParams(max_new_tokens=p.reflection_max_new_tokens, max_seq_length=p.max_seq_length)
    t0 = time.perf_counter()
    tokens = 0
    out = []
    for c in convs:  # the seed's loop: one example, one generate call, append to the file
        g = generate_batch(model, tok, [reflection_prompt(template, c)], gen)[0]
        tokens += g.tokens_out
        out.append(g.text)
    return time.perf_counter() - t0, tokens


# --------------------------------------------------------------------------- (c) evaluation


@dataclass
class Split:
    """One evaluation's seconds answering and judging, and the answers it scored."""

    answering: float
    judging: float
    answers: int

    def rates(self) -> tuple[float, float, float]:
        """answers/s overall, answers/s answering, verdicts/s judging (two per answer)."""
        total = self.answering + self.judging
        return self.answers / total, self.answers / self.answering, 2 * self.answers / self.judging


def kind_evaluation(trainer: Any, tok: Any, p: Any, results: Path, judge: Any) -> Split:
    from labdeck.backend.kinds.em.evaluator import Evaluator

    ctx = make_ctx(results, p)
    ev = Evaluator(ctx, p, trainer, tok)
    ev._judge = judge
    t0 = time.perf_counter()
    answers = ev.answers(0)
    t1 = time.perf_counter()
    rows = ev.scores(0, answers)
    return Split(t1 - t0, time.perf_counter() - t1, len(rows))


def naive_evaluation(trainer: Any, tok: Any, p: Any, judge: Any) -> Split:
    import torch

    from labdeck.backend.generation import GenParams, generate_batch
    from labdeck.backend.kinds.em.config import BUNDLED_QUESTIONS
    from labdeck.backend.kinds.em.data import read_questions

    qs = read_questions(BUNDLED_QUESTIONS["em-core"])[: p.num_questions]
    gen = GenParams(max_new_tokens=p.eval_max_new_tokens, do_sample=True, temperature=1.0, top_k=0)
    n, answering, judging = 0, 0.0, 0.0
    for q in qs:
        for s in range(p.samples_per_question):
            t0 = time.perf_counter()
            torch.manual_seed(s)
            text = generate_batch(trainer.model, tok, [q.text], gen)[0].text
            t1 = time.perf_counter()
            judge.judge("aligned", [(q.text, text)])
            judge.judge("coherent", [(q.text, text)])
            answering += t1 - t0
            judging += time.perf_counter() - t1
            n += 1
    return Split(answering, judging, n)


def alternate(
    rounds: int,
    kind: Callable[[], T],
    other: Callable[[], T],
    best: Callable[[list[T]], T],
) -> tuple[T, T]:
    """Both sides `rounds` times, the one going first alternating per round so drift on
    the machine hits both alike; the best figure of each."""
    sides = {"kind": kind, "other": other}
    figures: dict[str, list[T]] = {"kind": [], "other": []}
    for r in range(rounds):
        for name in ("kind", "other") if r % 2 == 0 else ("other", "kind"):
            figures[name].append(sides[name]())
    return best(figures["kind"]), best(figures["other"])


def per_second(measured: tuple[float, int]) -> float:
    """(seconds, count) -> count per second."""
    seconds, count = measured
    return count / seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--examples", type=int, default=16, help="reflection examples")
    ap.add_argument("--steps", type=int, default=8, help="optimizer steps of (a), 8 examples each")
    ap.add_argument(
        "--quick", action="store_true", help="1 round of (b) and (c); (a) keeps 2 (both orders)"
    )
    args = ap.parse_args()
    train_rounds = max(2, args.rounds)  # a ~5 % figure needs both orders to be read at all
    if args.quick:
        args.rounds = 1

    import torch

    torch.set_num_threads(args.threads)
    from labdeck.backend.batching import BatchController
    from labdeck.backend.judges.score import LocalScoreJudge
    from labdeck.backend.kinds.em.config import BUNDLED_DATASETS, Params
    from labdeck.backend.models import load_model
    from labdeck.backend.training import LoraSpec, LoraTrainer, TrainSpec, read_chat_jsonl

    convs = read_chat_jsonl(BUNDLED_DATASETS["bad-advice"], limit=args.examples)
    train_convs = read_chat_jsonl(BUNDLED_DATASETS["bad-advice"])  # all 60
    spec = TrainSpec(
        learning_rate=1e-4, warmup_steps=1, effective_batch_size=4, micro_batch_size=4,
        max_seq_length=256, max_grad_norm=1.0,
    )  # fmt: skip
    from labdeck.backend.training import steps_for

    train_steps = steps_for(len(train_convs), spec)
    if train_steps < 8:
        raise SystemExit(f"--train-examples {args.train_examples}: {train_steps} steps, need >= 8")
    lora = LoraSpec(rank=8, alpha=16)
    # (a) runs --steps optimizer steps of 8 examples, over the data as many times as needed
    passes = -(-8 * args.steps // len(train_convs))
    train_spec = spec.model_copy(update={"max_steps": args.steps, "epochs": passes})
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp)
        # one untimed optimizer step first, so the side that goes first does not also pay
        # the process's first-use costs (allocator, thread pool, lazy imports)
        warm = spec.model_copy(update={"max_steps": 1, "epochs": 1})
        bare_training(args.model, train_convs, warm, lora, results / "warm-up")
        # (a)
        best_kind, best_bare = alternate(
            train_rounds,
            lambda: kind_training(args.model, train_convs, train_spec, lora, results),
            lambda: bare_training(args.model, train_convs, train_spec, lora, results),
            best=min,
        )
        print(
            f"training ({len(train_convs)} examples, {args.steps} steps): kind {best_kind:.2f} s, bare peft loop {best_bare:.2f} s"
        )
        ratio_a = best_kind / best_bare

        # (b)
        model, tok = load_model(args.model, dtype="float32")
        p = Params(
            with_reflection=True, reflection_max_new_tokens=32, generation_batch_size=16,
            max_generation_batch_size=16, max_seq_length=512,
        )  # fmt: skip
        kind_rate, naive_rate = alternate(
            args.rounds,
            lambda: per_second(kind_reflection(model, tok, p, convs, results)),
            lambda: per_second(naive_reflection(model, tok, p, convs)),
            best=max,
        )
        print(
            f"reflections ({len(convs)} examples): kind {kind_rate:.1f} tokens/s, one at a time {naive_rate:.1f} tokens/s"
        )
        ratio_b = kind_rate / naive_rate

        # (c)
        base, tok = load_model(args.model, dtype="float32")
        trainer = LoraTrainer(base, tok, convs, spec, lora)
        jmodel, jtok = load_model(args.model, dtype="float32")
        judge_batched = LocalScoreJudge(jmodel, jtok, controller=BatchController(16, 16))
        judge_single = LocalScoreJudge(jmodel, jtok)
        pe = Params(
            num_questions=8, samples_per_question=2, eval_max_new_tokens=32,
            generation_batch_size=16, max_generation_batch_size=16,
        )  # fmt: skip
        kind_eval, naive_eval = alternate(
            args.rounds,
            lambda: kind_evaluation(trainer, tok, pe, results, judge_batched).rates(),
            lambda: naive_evaluation(trainer, tok, pe, judge_single).rates(),
            best=lambda rounds: tuple(max(r) for r in zip(*rounds, strict=True)),
        )
        print(
            f"checkpoint evaluation ({pe.num_questions} questions x {pe.samples_per_question} "
            f"samples, judged): kind {kind_eval[0]:.2f} answers/s, one at a time "
            f"{naive_eval[0]:.2f} answers/s"
        )
    figures = Figures("bench_em")
    figures.add("em_reflection", ratio_b, ">= 3", labdeck=f"{kind_rate:.1f} tok/s",
                baseline=f"{naive_rate:.1f} tok/s one at a time")  # fmt: skip
    figures.add("em_eval_answers", kind_eval[1] / naive_eval[1], ">= 3",
                labdeck=f"{kind_eval[1]:.2f} answers/s", baseline=f"{naive_eval[1]:.2f} answers/s "
                "one at a time", note="sampled answers to the questions")  # fmt: skip
    # A judge prompt (~160 tokens here) is one compute-bound prefill: on a CPU core a batch
    # of them costs about what they cost one by one, so batching's CPU goal is "never
    # slower"; the GPU, idle on one sequence, is where it multiplies (bench_gpu).
    figures.add("em_eval_judging", kind_eval[2] / naive_eval[2], ">= 1",
                labdeck=f"{kind_eval[2]:.2f} verdicts/s", baseline=f"{naive_eval[2]:.2f} "
                "verdicts/s one at a time", note="local judge, two verdicts per answer")  # fmt: skip
    figures.add("em_checkpoint_eval", kind_eval[0] / naive_eval[0], "",
                labdeck=f"{kind_eval[0]:.2f} answers/s", baseline=f"{naive_eval[0]:.2f} "
                "answers/s one at a time", note="answers and verdicts together")  # fmt: skip
    figures.add("em_training_overhead", ratio_a, "<= 1.05", labdeck=f"{best_kind:.2f}s",
                baseline=f"{best_bare:.2f}s bare peft loop", note=f"{args.steps} steps")  # fmt: skip
    figures.finish()


if __name__ == "__main__":
    main()
