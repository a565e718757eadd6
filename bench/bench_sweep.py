"""Sweep throughput on smollm2-135m, three ways side by side in one process:

(a) labdeck's degradation sweep (one load, restore in place, adaptive batches,
    records appended per batch), run through the real runner;
(b) the seeds' way: reload the model from disk for every level, generate one
    prompt at a time, rewrite the whole results JSON after every prompt;
(c) bare batched `model.generate` over the same prompts and passes (no
    degradation, no records): the floor labdeck's bookkeeping is measured against.

Prints prompts/s for each, a/b (goal >= 5x) and the overhead a/c (goal <= 1.10).
Usage: python bench/bench_sweep.py [--prompts 38] [--levels 0,0.05,0.1] [--tokens 16] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def bare(model, tok, texts: list[str], passes: int, tokens: int) -> tuple[float, list[str]]:
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
                **enc, max_new_tokens=tokens, do_sample=False, pad_token_id=tok.pad_token_id
            )
        outs = tok.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    return time.perf_counter() - t0, [o.strip() for o in outs]


def seeds_way(folder: str, texts: list[str], levels: list[float], tokens: int, out: Path) -> float:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from labdeck.backend.kinds.degradation.groups import discover_groups
    from labdeck.backend.kinds.degradation.methods import degrade

    results: list[dict] = []
    t0 = time.perf_counter()
    for level in levels:
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
        tok = AutoTokenizer.from_pretrained(folder)
        degrade(discover_groups(model).groups["attention"].params, "mult_gauss", level, seed=42)
        for i, text in enumerate(texts):
            s = time.perf_counter()
            prompt = tok.apply_chat_template(
                [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
            )
            enc = tok(prompt, return_tensors="pt", add_special_tokens=False)
            with torch.inference_mode():
                ids = model.generate(
                    **enc, max_new_tokens=tokens, do_sample=False, pad_token_id=tok.eos_token_id
                )
            output = tok.decode(ids[0, enc["input_ids"].shape[1] :], skip_special_tokens=True)
            results.append(
                {
                    "std_dev": level,
                    "prompt_id": i,
                    "prompt_text": text,
                    "output": output,
                    "duration": time.perf_counter() - s,
                }
            )
            out.write_text(json.dumps(results, ensure_ascii=False, indent=2))
        del model
    return time.perf_counter() - t0


def labdeck_sweep(
    results: Path, prompts_file: Path, levels: list[float], n: int, tokens: int, threads: int
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
        "generation.do_sample=false",
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=38, help="dream prompts (the seed ran all 38)")
    ap.add_argument("--levels", default="0,0.05,0.1")
    ap.add_argument("--tokens", type=int, default=16)
    ap.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads, the same for every side"
    )
    args = ap.parse_args()
    import torch

    from labdeck.backend.kinds.degradation.promptsets import load_prompt_set
    from labdeck.backend.models import ensure_embedded, load_model

    # every side alike; a busy shared 2-core machine is fastest on one thread
    torch.set_num_threads(args.threads)
    levels = [float(x) for x in args.levels.split(",")]
    texts = [p.text for p in load_prompt_set("dreams", args.prompts).prompts]
    folder = str(ensure_embedded())
    n_done = len(texts) * len(levels)
    with tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        prompts_file = tmpd / "prompts.json"
        prompts_file.write_text(json.dumps(texts))
        print(
            f"smollm2-135m, {len(texts)} prompts × {len(levels)} levels, {args.tokens} new tokens, greedy, {args.threads} thread(s)"
        )

        model, tok = load_model("smollm2-135m")
        bare(model, tok, texts[:2], 1, 2)  # warm-up (allocator, kernels) so no side pays it
        del model
        t0 = time.perf_counter()
        model, tok = load_model("smollm2-135m")
        _, c_outs = bare(model, tok, texts, len(levels), args.tokens)
        c = time.perf_counter() - t0
        del model
        print(
            f"(c) bare batched generate : {c:7.1f} s  {n_done / c:6.2f} prompts/s  (load included)"
        )

        a, recs = labdeck_sweep(
            tmpd / "results", prompts_file, levels, len(texts), args.tokens, args.threads
        )
        print(
            f"(a) labdeck sweep         : {a:7.1f} s  {n_done / a:6.2f} prompts/s  ({len(recs)} records)"
        )
        clean = {r["prompt_text"]: r["output"] for r in recs if r["level_value"] == 0.0}
        same = sum(clean.get(t) == o for t, o in zip(texts, c_outs, strict=True))
        print(f"    level-0 outputs identical to (c): {same}/{len(texts)}")

        b = seeds_way(folder, texts, levels, args.tokens, tmpd / "outputs_seed.json")
        print(f"(b) seeds' way            : {b:7.1f} s  {n_done / b:6.2f} prompts/s")

    print(f"bench_sweep_overhead: ratio={a / c:.3f} (goal <= 1.10)")
    print(f"bench_sweep: ratio={b / a:.2f} (goal >= 5)")


if __name__ == "__main__":
    main()
