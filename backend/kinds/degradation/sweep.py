"""The sweep loop: for each group × level × repeat, restore, degrade, answer every prompt.

Work unit = one prompt answered at one (group, level, repeat); its key is the
seed's resume key (param_group, level, repeat_index, method, prompt_text). The
loop is written so that a run killed at any moment and resumed produces the
same records as one that never stopped:
- a (group, level, repeat) whose prompts are all recorded is skipped without
  touching the model;
- the degraded weights depend only on (seed + repeat, parameter name, level)
  (see methods.py), never on what ran before in the process;
- sampling is per row: each prompt draws from its own generator seeded by
  (repeat seed, record key), so a record's text is the same whatever batch it ran in
  (an OOM retry, a resume with another batch size);
- per-level metrics are computed from all records of the level (earlier
  attempts included) and emitted once, whichever attempt completes the level
  (`RunContext.metric_once` remembers what was emitted).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ...batching import BatchController, BatchPolicy
from ...generation import Generation, GenParams, generate_batch, perplexity
from ...gpu import memory_fraction_probe, probe_for, process_memory
from ...kinds.base import RunContext
from ...ledger import unit_key
from ...seeding import set_all_seeds
from .config import Params
from .groups import ModelGroups
from .methods import degrade
from .metrics import level_metrics
from .promptsets import Prompt, PromptSet
from .restore import RESTORE_STRATEGY, SubsetSnapshot

# Metric names emitted per (group, level); `perplexity` is added when computed.
TEXT_METRICS = ("mean_tokens_out", "distinct_2", "mattr", "repetition_rate")


def record_key(group: str, level: float, repeat: int, method: str, prompt_text: str) -> str:
    """The seed's resume key: (param_group, level, repeat_index, method, prompt_text)."""
    return unit_key(group, level, repeat, method, prompt_text)


@dataclass
class LevelStats:
    """What the level's metrics need, gathered from every record of the level."""

    outputs: list[str] = field(default_factory=list)
    tokens_out: list[int] = field(default_factory=list)
    perplexity: float | None = None

    def add(self, record: dict[str, Any]) -> None:
        self.outputs.append(str(record.get("output", "")))
        self.tokens_out.append(int(record.get("tokens_out") or 0))
        if self.perplexity is None and isinstance(record.get("perplexity"), int | float):
            self.perplexity = float(record["perplexity"])

    def metrics(self) -> dict[str, float]:
        out = level_metrics(self.outputs, self.tokens_out)
        if self.perplexity is not None:
            out["perplexity"] = self.perplexity
        return out


@dataclass
class Runtime:
    """The loaded pieces a sweep works with (built by experiment.py)."""

    model: Any
    tok: Any  # tokenizer, or processor with an image
    groups: ModelGroups
    snapshot: SubsetSnapshot
    prompts: PromptSet
    device: str
    dtype: str
    image: Any = None
    image_filename: str | None = None
    perplexity_text: str = ""


class Sweep:
    def __init__(self, ctx: RunContext, params: Params, rt: Runtime) -> None:
        self.ctx, self.p, self.rt = ctx, params, rt
        self.gen = GenParams(
            max_new_tokens=params.generation.max_new_tokens,
            do_sample=params.generation.do_sample,
            temperature=params.generation.temperature,
            top_k=params.generation.top_k,
            top_p=params.generation.top_p,
            max_seq_length=max(params.generation.max_seq_length, 1024)
            if rt.image is not None
            else params.generation.max_seq_length,
        )
        n = len(rt.prompts)
        m = params.memory
        policy = BatchPolicy(m.grow_below, m.pause_above, m.shrink_above, m.pause_seconds)
        memory = process_memory(rt.device)
        self.controller = BatchController(
            start=min(n, params.max_batch_size),
            maximum=params.max_batch_size,
            probe=memory_fraction_probe(rt.device),
            memory=memory,
            on_change=lambda size, reason: ctx.batch(size, reason),
            policy=policy,
        )
        # Perplexity windows are batched separately (their size means windows, not
        # prompts), under the same memory policy and out-of-memory protection.
        self.ppl_controller = BatchController(
            start=8,
            maximum=64,
            probe=memory_fraction_probe(rt.device),
            memory=memory,
            on_change=lambda size, reason: ctx.info(
                f"perplexity windows per batch: {size} ({reason})"
            ),
            policy=policy,
        )
        self.stats: dict[tuple[str, float], LevelStats] = {}
        self.restore_seconds = 0.0
        self.generate_seconds = 0.0
        self.prompt_group = params.prompts.group or rt.prompts.name
        self.experiment_id = f"{params.method}|{params.model}|{params.name_suffix}"
        self.config_name = ctx.run.title

    # ------------------------------------------------------------------ resume state
    def _load_previous(self) -> None:
        """Level statistics from earlier attempts' records."""
        for rec in self.ctx.ledger.records():
            group, level = rec.get("param_group_name"), rec.get("level_value")
            if isinstance(group, str) and isinstance(level, int | float):
                self.stats.setdefault((group, float(level)), LevelStats()).add(rec)

    def _keys(self, group: str, level: float, repeat: int) -> dict[int, str]:
        return {
            pr.id: record_key(group, level, repeat, self.p.method, pr.text)
            for pr in self.rt.prompts.prompts
        }

    # ------------------------------------------------------------------ main loop
    def run(self) -> dict[str, float]:
        p, prompts = self.p, self.rt.prompts.prompts
        self._load_previous()
        total = len(p.param_groups) * len(p.levels) * p.n_rep * len(prompts)
        done = sum(
            1
            for g in p.param_groups
            for lvl in p.levels
            for r in range(p.n_rep)
            for k in self._keys(g, lvl, r).values()
            if self.ctx.is_done(k)
        )
        self.ctx.phase("sweep", total)
        self.ctx.progress(done)
        for group in p.param_groups:
            for li, level in enumerate(p.levels):
                for repeat in range(p.n_rep):
                    done = self._unit(group, li, level, repeat, done)
                self._emit_level(group, level)
        self.rt.snapshot.restore()  # leave the model clean
        return self.final_metrics()

    def _unit(self, group: str, li: int, level: float, repeat: int, done: int) -> int:
        p, rt, ctx = self.p, self.rt, self.ctx
        keys = self._keys(group, level, repeat)
        pending = [pr for pr in rt.prompts.prompts if not ctx.is_done(keys[pr.id])]
        stats = self.stats.setdefault((group, float(level)), LevelStats())
        need_ppl = p.compute_perplexity and stats.perplexity is None
        if not pending and not need_ppl:
            return done
        ctx.check_stop()
        repeat_seed = p.seed + repeat
        params = rt.groups.groups[group].params

        def restore_and_degrade() -> None:
            # Repeatable from the start: an out-of-memory retry restores first, and the
            # noise depends only on (seed, parameter name, level).
            t0 = time.perf_counter()
            rt.snapshot.restore()
            self.restore_seconds += time.perf_counter() - t0
            set_all_seeds(repeat_seed)
            if level != 0:  # level 0 is the clean model: nothing to degrade or restore later
                rt.snapshot.mark_dirty([n for n, _ in params])
                degrade(params, p.method, level, repeat_seed, p.uni_quant_mode)

        self.controller.guard(restore_and_degrade, f"degrading {group} at level {level}")
        if need_ppl:
            stats.perplexity = perplexity(
                rt.model, rt.tok, rt.perplexity_text, controller=self.ppl_controller
            )
            self._metric("perplexity", stats.perplexity, group, level)
        t1 = time.perf_counter()
        n_before = done
        try:
            for batch in self.controller.iter_batches(pending, self._work(keys, repeat_seed)):
                vram = self._vram_percent()
                for prompt, gen in zip(batch.items, batch.result, strict=True):
                    rec = self._record(
                        group, li, level, repeat, prompt, gen, batch.size, vram, stats.perplexity
                    )
                    ctx.record(keys[prompt.id], rec)
                    stats.add(rec)
                done += len(batch.items)
                ctx.progress(done)
                ctx.check_stop()
        finally:
            # Also when a stop request ends the loop: records written here get their
            # line in the log (a stop used to drop the line of the level it ended).
            self.generate_seconds += time.perf_counter() - t1
            if done > n_before:
                ctx.info(
                    f"{group} level {level} repeat {repeat}: {done - n_before} prompts in "
                    f"{time.perf_counter() - t1:.1f}s (restore {self.restore_seconds:.3f}s so far)"
                )
        return done

    def _work(
        self, keys: dict[int, str], repeat_seed: int
    ) -> Callable[[list[Prompt]], list[Generation]]:
        from ...sampling import row_seed

        def work(batch: list[Prompt]) -> list[Generation]:
            return generate_batch(
                self.rt.model,
                self.rt.tok,
                [pr.text for pr in batch],
                self.gen,
                image=self.rt.image,
                row_seeds=[row_seed(repeat_seed, keys[pr.id]) for pr in batch],
            )

        return work

    def _vram_percent(self) -> float | None:
        if not self.rt.device.startswith("cuda"):
            return None
        return round(probe_for(self.rt.device).fraction * 100, 2)

    # ------------------------------------------------------------------ records and metrics
    def _record(
        self,
        group: str,
        li: int,
        level: float,
        repeat: int,
        prompt: Prompt,
        gen: Generation,
        batch_size: int,
        vram: float | None,
        ppl: float | None,
    ) -> dict[str, Any]:
        """Every field of the seed's output contract (kept names and new ones)."""
        p, rt = self.p, self.rt
        rec: dict[str, Any] = {
            "timestamp": datetime.now().isoformat(timespec="seconds"),
            "model_name": p.model,
            "prompt_group": self.prompt_group,
            "prompt_id": prompt.id,
            "prompt_category": prompt.category,
            "prompt_text": prompt.text,
            "output": gen.text,
            "std_dev": level,
            "level_value": level,
            "level_index": li,
            "repeat_index": repeat,
            "temperature": p.generation.temperature,
            "do_sample": p.generation.do_sample,
            "param_group_name": group,
            "seed": p.seed + repeat,
            "duration": round(gen.seconds / max(1, gen.batch_size), 4),
            "batch_seconds": gen.seconds,
            "tokens": gen.tokens_out,
            "tokens_out": gen.tokens_out,
            "tokens_in": gen.tokens_in,
            "degradation_method": p.method,
            "usar_4bit": p.load_4bit,
            "load_4bit": p.load_4bit,
            "experiment_id": self.experiment_id,
            "config_name": self.config_name,
            "model_variant": "it",
            "batch_size_effective": batch_size,
            "device": rt.device,
            "dtype": rt.dtype,
            "restore_strategy": RESTORE_STRATEGY,
            "gen_params": self.gen.record(),
            "image_used": rt.image is not None,
            "image_filename": rt.image_filename,
            "vram_usage_percent": vram,
        }
        if p.method == "uni_quant":
            rec["uni_quant_mode"] = p.uni_quant_mode
        if ppl is not None:
            rec["perplexity"] = ppl
        return rec

    def _metric(self, name: str, value: float, group: str, level: float) -> None:
        self.ctx.metric_once(name, value, level=float(level), group=group)

    def _level_complete(self, group: str, level: float) -> bool:
        return all(
            self.ctx.is_done(k)
            for r in range(self.p.n_rep)
            for k in self._keys(group, level, r).values()
        )

    def _emit_level(self, group: str, level: float) -> None:
        if not self._level_complete(group, level):
            return
        values = self.stats.get((group, float(level)), LevelStats()).metrics()
        for name in TEXT_METRICS:
            if name in values:
                self._metric(name, values[name], group, level)

    def level_table(self) -> list[dict[str, Any]]:
        """One row per (group, level): the curves, for artifacts/level_metrics.csv."""
        rows = []
        for group in self.p.param_groups:
            for li, level in enumerate(self.p.levels):
                st = self.stats.get((group, float(level)))
                if st and st.outputs:
                    rows.append(
                        {"param_group": group, "level_index": li, "level": level, **st.metrics()}
                    )
        return rows

    def final_metrics(self, reached: bool = False) -> dict[str, float]:
        """For `labdeck compare`: the top level's values per group and overall, plus totals.

        `reached`: a stopped sweep's numbers, each group at the highest level it has
        outputs for (the top level may not have been reached)."""
        out: dict[str, float] = {}
        per_name: dict[str, list[float]] = {}
        for group in self.p.param_groups:
            top = max(self.p.levels)
            if reached:
                done = [
                    lv
                    for lv in self.p.levels
                    if (st := self.stats.get((group, float(lv)))) and st.outputs
                ]
                if not done:
                    continue
                top = max(done)
            values = self.stats.get((group, float(top)), LevelStats()).metrics()
            for name, v in values.items():
                out[f"{name}_{group}"] = v
                per_name.setdefault(name, []).append(v)
        for name, vs in per_name.items():
            out[name] = sum(vs) / len(vs)
        clean = [
            self.stats[(g, 0.0)].perplexity for g in self.p.param_groups if (g, 0.0) in self.stats
        ]
        clean = [c for c in clean if c is not None]
        if clean:
            out["perplexity_clean"] = clean[0]
        all_tokens = [t for st in self.stats.values() for t in st.tokens_out]
        if all_tokens:
            out["mean_tokens_out_all"] = sum(all_tokens) / len(all_tokens)
        out["records"] = float(len(all_tokens))
        return out
