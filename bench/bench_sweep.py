"""Sweep throughput on smollm2-135m, three ways side by side in one process:

(a) labdeck's degradation sweep (one load, restore in place, adaptive batches,
    records appended per batch), run through the real runner;
(b) seed 001's own loop: one load, the degradable subset kept in memory and restored
    per level, batches of up to 40 under its VRAM checks, the results JSON saved after
    every batch;
(c) bare batched `model.generate` over the same prompts and passes (no
    degradation, no records): the floor labdeck's bookkeeping is measured against.

Each comparison runs twice: greedy decoding, and sampled decoding as the presets sample
(temperature 1.0, top-k 64, top-p 0.95): labdeck draws each row from its own generator
(backend/sampling.py), the seed and the bare loop from `generate`'s one global RNG.
Prints prompts/s for each (best of --rounds, order alternating), per decoding the
overhead a/c (goal <= 1.10) and b/a: labdeck against the seed's real loop (goal >= 1).
Usage: python bench/bench_sweep.py [--rounds 2] [--prompts 38] [--levels 0,0.05,0.1]
                                   [--tokens 16] [--threads 1] [--decoding greedy,sampled]
                                   [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from figures import Figures

# the presets' sampling (degradation-gemma3-4b-*.toml)
SAMPLING = {"temperature": 1.0, "top_k": 64, "top_p": 0.95}


def generate_kwargs(sampled: bool) -> dict:
    return {"do_sample": True, **SAMPLING} if sampled else {"do_sample": False}


def bare(
    model, tok, texts: list[str], passes: int, tokens: int, sampled: bool = False
) -> tuple[float, list[str]]:
    import torch

    rendered = [
        tok.apply_chat_template(
            [{"role": "user", "content": t}], tokenize=False, add_generation_prompt=True
        )
        for t in texts
    ]
    t0 = time.perf_counter()
    outs: list[str] = []
    for _ in range(passes):
        enc = tok(rendered, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.inference_mode():
            out = model.generate(
                **enc,
                max_new_tokens=tokens,
                pad_token_id=tok.pad_token_id,
                **generate_kwargs(sampled),
            )
        outs = tok.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    return time.perf_counter() - t0, [o.strip() for o in outs]


def vram_percent() -> float:
    """The seed's VRAM check, on whatever device is here: the used percentage of the
    device the model lives on (torch.cuda on a GPU; host memory on a CPU machine)."""
    from labdeck.backend.gpu import probe_for

    fraction = probe_for("cuda:0" if _cuda() else "cpu").fraction
    return 100.0 * (fraction or 0.0)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def seed_loop(
    texts: list[str],
    levels: list[float],
    tokens: int,
    out: Path,
    max_batch_size: int = 40,
    seed: int = 42,
    sampled: bool = False,
) -> tuple[float, list[dict]]:
    """Seed 001's own loop: load once, keep the degradable subset in CPU memory
    (`subset_in_memory`), and per level: restore, degrade, generate in batches of
    `min(n_prompts, max_batch_size)` with its VRAM checks before each batch (> 95 %:
    save and abort; > 90 %: warn and pause 1 s; < 40 %: grow up to the maximum),
    saving the single results JSON after every batch."""
    import torch

    from labdeck.backend.kinds.degradation.groups import discover_groups
    from labdeck.backend.kinds.degradation.methods import degrade
    from labdeck.backend.models import load_model
    from labdeck.backend.seeding import set_all_seeds

    t0 = time.perf_counter()
    model, tok = load_model("smollm2-135m")
    params = discover_groups(model).groups["attention"].params
    saved = [p.detach().to("cpu", copy=True) for _, p in params]
    rendered = [
        tok.apply_chat_template(
            [{"role": "user", "content": t}], tokenize=False, add_generation_prompt=True
        )
        for t in texts
    ]
    results: list[dict] = []
    batch_size = min(len(texts), max_batch_size)
    for level in levels:
        with torch.no_grad():
            for (_, p), clean in zip(params, saved, strict=True):
                p.copy_(clean)
        set_all_seeds(seed)
        degrade(params, "mult_gauss", level, seed)
        i = 0
        while i < len(texts):
            used = vram_percent()
            if used > 95:
                out.write_text(json.dumps(results, ensure_ascii=False, indent=2))
                raise SystemExit(f"seed loop: memory {used:.0f} % > 95 %, results saved")
            if used > 90:
                time.sleep(1)
            elif used < 40:
                batch_size = min(max_batch_size, len(texts), batch_size * 2)
            chunk = rendered[i : i + batch_size]
            s = time.perf_counter()
            enc = tok(chunk, return_tensors="pt", padding=True, add_special_tokens=False)
            with torch.inference_mode():
                ids = model.generate(
                    **enc,
                    max_new_tokens=tokens,
                    pad_token_id=tok.pad_token_id,
                    **generate_kwargs(sampled),
                )
            outs = tok.batch_decode(ids[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
            duration = time.perf_counter() - s
            for j, text in enumerate(outs):
                results.append(
                    {
                        "std_dev": level,
                        "prompt_id": i + j,
                        "prompt_text": texts[i + j],
                        "output": text.strip(),
                        "duration": duration,
                        "batch_size_effective": len(chunk),
                        "vram_usage_percent": used,
                    }
                )
            i += len(chunk)
            out.write_text(json.dumps(results, ensure_ascii=False, indent=2))
    return time.perf_counter() - t0, results


def labdeck_sweep(
    results: Path,
    prompts_file: Path,
    levels: list[float],
    n: int,
    tokens: int,
    threads: int,
    sampled: bool = False,
) -> tuple[float, list[dict]]:
    from labdeck.backend import cli

    sets = [
        "model=smollm2-135m",
        f"cpu_threads={threads}",
        f"prompts.set={json.dumps(str(prompts_file))}",
        'param_groups=["attention"]',
        f"levels={json.dumps(levels)}",
        f"max_batch_size={n}",
        f"generation.max_new_tokens={tokens}",
        f"generation.do_sample={str(sampled).lower()}",
        *(f"generation.{k}={v}" for k, v in SAMPLING.items() if sampled),
    ]
    argv = [
        "run",
        "--kind",
        "degradation",
        "--title",
        "bench",
        "--quiet",
        "--results",
        str(results),
    ]
    for s in sets:
        argv += ["--set", s]
    t0 = time.perf_counter()
    rc = cli.main(argv)
    elapsed = time.perf_counter() - t0
    if rc != 0:
        raise SystemExit(f"labdeck sweep failed (exit {rc})")
    run = next(p for p in results.iterdir() if (p / "records.jsonl").is_file())
    recs = [json.loads(line) for line in (run / "records.jsonl").read_text().splitlines()]
    return elapsed, recs


def compare(
    args, texts: list[str], levels: list[float], tmpd: Path, sampled: bool, figures
) -> None:
    """The three sides on one decoding, alternating order per round."""
    from labdeck.backend.models import load_model

    decoding = "sampled" if sampled else "greedy"
    n_done = len(texts) * len(levels)
    prompts_file = tmpd / "prompts.json"

    def side_bare() -> float:
        t0 = time.perf_counter()
        model, tok = load_model("smollm2-135m")
        _, outs = bare(model, tok, texts, len(levels), args.tokens, sampled)
        side_bare.outs = outs
        return time.perf_counter() - t0

    def side_labdeck(r: int) -> float:
        seconds, recs = labdeck_sweep(
            tmpd / f"results-{decoding}{r}", prompts_file, levels, len(texts), args.tokens,
            args.threads, sampled,
        )  # fmt: skip
        side_labdeck.recs = recs
        return seconds

    def side_seed(r: int) -> float:
        out = tmpd / f"seed-{decoding}{r}.json"
        seconds, recs = seed_loop(texts, levels, args.tokens, out, sampled=sampled)
        side_seed.recs = recs
        return seconds

    # equal work (same prompts, levels, tokens, one load each), alternating order per round
    times: dict[str, list[float]] = {"labdeck": [], "seed": [], "bare": []}
    order = ("labdeck", "seed", "bare")
    for r in range(args.rounds):
        for side in order if r % 2 == 0 else order[::-1]:
            if side == "labdeck":
                times[side].append(side_labdeck(r))
            elif side == "seed":
                times[side].append(side_seed(r))
            else:
                times[side].append(side_bare())
    a, b, c = (min(times[k]) for k in ("labdeck", "seed", "bare"))
    recs = side_labdeck.recs
    print(f"{decoding}:")
    print(
        f"(a) labdeck sweep         : {a:7.1f} s  {n_done / a:6.2f} prompts/s  ({len(recs)} records)"
    )
    print(
        f"(b) seed 001's loop       : {b:7.1f} s  {n_done / b:6.2f} prompts/s  "
        f"({len(side_seed.recs)} results; batch <= 40, in-memory restore, memory checks)"
    )
    print(f"(c) bare batched generate : {c:7.1f} s  {n_done / c:6.2f} prompts/s  (load included)")
    print(f"    best of {args.rounds} rounds each, order alternating per round")
    if not sampled:  # sampled texts differ by design: per-row generators vs one global RNG
        lab = {(r["level_value"], r["prompt_text"]): r["output"] for r in recs}
        seed_out = {(r["std_dev"], r["prompt_text"]): r["output"] for r in side_seed.recs}
        same = sum(lab.get(k) == v for k, v in seed_out.items())
        print(f"    outputs identical, labdeck vs seed loop: {same}/{len(seed_out)}")
        clean = {r["prompt_text"]: r["output"] for r in recs if r["level_value"] == 0.0}
        same = sum(clean.get(t) == o for t, o in zip(texts, side_bare.outs, strict=True))
        print(f"    level-0 outputs identical to (c): {same}/{len(texts)}")
    suffix = "" if not sampled else "_sampled"
    figures.add(f"bench_sweep_overhead{suffix}", a / c, "<= 1.10", labdeck=f"{a:.1f}s",
                baseline=f"{c:.1f}s bare generate ({decoding})")  # fmt: skip
    figures.add(f"bench_sweep{suffix}", b / a, ">= 1.0", labdeck=f"{a:.1f}s",
                baseline=f"{b:.1f}s seed loop ({decoding})", note="seed loop / labdeck")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=38, help="dream prompts (the seed ran all 38)")
    ap.add_argument("--levels", default="0,0.05,0.1")
    ap.add_argument("--tokens", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=2, help="runs per side, order alternating")
    ap.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads, the same for every side"
    )
    ap.add_argument("--decoding", default="greedy,sampled", help="greedy, sampled or both")
    ap.add_argument(
        "--quick", action="store_true", help="8 prompts x 2 levels, 12 tokens, best of 2 rounds"
    )
    args = ap.parse_args()
    if args.quick:
        args.prompts, args.levels, args.tokens, args.rounds = 8, "0,0.1", 12, 2
    import torch

    from labdeck.backend.kinds.degradation.promptsets import load_prompt_set
    from labdeck.backend.models import ensure_embedded, load_model

    figures = Figures("bench_sweep")
    # every side alike; a busy shared 2-core machine is fastest on one thread
    torch.set_num_threads(args.threads)
    levels = [float(x) for x in args.levels.split(",")]
    texts = [p.text for p in load_prompt_set("dreams", args.prompts).prompts]
    ensure_embedded()  # the conversion is not part of any side
    with tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        (tmpd / "prompts.json").write_text(json.dumps(texts))
        print(
            f"smollm2-135m, {len(texts)} prompts × {len(levels)} levels, {args.tokens} new "
            f"tokens, {args.threads} thread(s)"
        )
        model, tok = load_model("smollm2-135m")
        bare(model, tok, texts[:2], 1, 2)  # warm-up (allocator, kernels) so no side pays it
        del model
        for decoding in args.decoding.split(","):
            compare(args, texts, levels, tmpd, decoding == "sampled", figures)
    figures.finish()


if __name__ == "__main__":
    main()
