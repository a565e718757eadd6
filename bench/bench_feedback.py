"""feedback kind: API processing throughput, and local batched generation.

1. Processing against the loopback Together server (tests/together_loopback.py) with a
   fixed 1 s latency per chat completion and delay = 0.2: the kind's provider
   (concurrent, request starts spaced by the delay, i.e. capped at 60/delay = 300
   requests/min) vs the seed's loop (the same SDK client, one request at a time,
   sleeping `delay` after each). Same prompts, same answers; the two sides alternate.
   With n requests the kind takes (n-1)·delay + latency and the seed n·(latency + delay),
   so the ratio climbs from 1 towards (latency + delay) / delay = 6 as n grows; 64
   requests put it within 10 % of that steady state, where it measures the rate cap and
   the overhead of each request, not the one latency the last request waits. The figure
   is scale-free in (latency, delay): `--time-scale 0.25` (what --quick uses) runs the
   same comparison four times faster.
2. Local generation on smollm2-135m (CPU): the local provider's batched generation vs one
   prompt at a time, same prompts and greedy settings, alternating.

Usage: python bench/bench_feedback.py [--requests 64] [--prompts 16] [--tokens 24]
                                     [--rounds 2] [--time-scale 1.0] [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from figures import Figures  # noqa: E402

DELAY = 0.2
LATENCY = 1.0


def _messages(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"Improve answer number {i} from the user's feedback."}]


def bench_api(n: int, rounds: int, scale: float) -> tuple[float, float, float]:
    from together import Together
    from together_loopback import loopback

    from labdeck.backend.providers import ChatRequest, chat_provider

    os.environ.setdefault("TOGETHER_API_KEY", "bench-loopback-key")
    delay, latency = DELAY * scale, LATENCY * scale
    with loopback(latency=latency) as server:

        def kind() -> list[str]:
            p = chat_provider("together", "m", base_url=server.url, concurrency=8, delay=delay)
            try:
                return [
                    r.text
                    for r in p.chat([ChatRequest(_messages(i), max_tokens=32) for i in range(n)])
                ]
            finally:
                p.close()

        def seed_loop() -> list[str]:
            client = Together(base_url=server.url)
            out = []
            for i in range(n):
                resp = client.chat.completions.create(
                    model="m", messages=_messages(i), max_tokens=32
                )
                out.append(resp.choices[0].message.content.strip())
                time.sleep(delay)
            client.close()
            return out

        times: dict[str, list[float]] = {"kind": [], "seed": []}
        answers: dict[str, list[str]] = {}
        order = [("kind", kind), ("seed", seed_loop)]
        for r in range(rounds):
            for name, fn in order if r % 2 == 0 else order[::-1]:
                t0 = time.perf_counter()
                answers[name] = fn()
                times[name].append(time.perf_counter() - t0)
        assert answers["kind"] == answers["seed"], "both sides must produce the same answers"
    kind_s, seed_s = min(times["kind"]), min(times["seed"])
    print(
        f"api kind (concurrent, {60 / delay:.0f} rpm cap): {n} requests in {kind_s:.2f} s ({n / kind_s * 60:.0f}/min)"
    )
    print(
        f"api seed loop (one at a time + {delay} s)   : {n} requests in {seed_s:.2f} s ({n / seed_s * 60:.0f}/min)"
    )
    steady = (latency + delay) / delay
    print(f"steady-state ratio at this latency and delay: {steady:.1f}")
    return seed_s / kind_s, kind_s, seed_s


def bench_local(n: int, rounds: int, new_tokens: int = 24) -> float:
    import torch

    from labdeck.backend.generation import GenParams, generate_batch
    from labdeck.backend.providers import ChatRequest
    from labdeck.backend.providers.local import LocalChat

    torch.set_num_threads(2)
    provider = LocalChat("smollm2-135m", start_batch_size=n, max_batch_size=n, device_map=None)
    model, tok = provider.load()
    prompts = [_messages(i) for i in range(n)]
    gen = GenParams(max_new_tokens=new_tokens, do_sample=False, max_seq_length=1024)

    def batched() -> int:
        res = provider.chat([ChatRequest(p, max_tokens=new_tokens) for p in prompts])
        return sum(r.tokens_out for r in res)

    def one_at_a_time() -> int:
        return sum(generate_batch(model, tok, [p], gen)[0].tokens_out for p in prompts)

    batched()  # warm-up
    times: dict[str, list[float]] = {"batched": [], "single": []}
    tokens: dict[str, int] = {}
    order = [("batched", batched), ("single", one_at_a_time)]
    for r in range(rounds):
        for name, fn in order if r % 2 == 0 else order[::-1]:
            t0 = time.perf_counter()
            tokens[name] = fn()
            times[name].append(time.perf_counter() - t0)
    b, s = min(times["batched"]), min(times["single"])
    print(f"local batched ({n} prompts)   : {b:.2f} s, {tokens['batched'] / b:.1f} tokens/s")
    print(f"local one prompt at a time     : {s:.2f} s, {tokens['single'] / s:.1f} tokens/s")
    return (tokens["batched"] / b) / (tokens["single"] / s)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=64)
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--time-scale", type=float, default=1.0, help="latency and delay x this")
    ap.add_argument("--tokens", type=int, default=24, help="new tokens per local prompt")
    ap.add_argument(
        "--quick", action="store_true", help="time scale 0.25, 8 prompts x 12 tokens, 1 round"
    )
    args = ap.parse_args()
    if args.quick:
        args.time_scale, args.prompts, args.tokens, args.rounds = 0.25, 8, 12, 1
    figures = Figures("bench_feedback")
    api, kind_s, seed_s = bench_api(args.requests, args.rounds, args.time_scale)
    local = bench_local(args.prompts, args.rounds, args.tokens)
    figures.add(
        "bench_feedback_local_batching", local, ">= 3", note="tokens/s batched / one at a time"
    )
    figures.add("bench_feedback_processing", api, ">= 4", labdeck=f"{kind_s:.2f}s",
                baseline=f"{seed_s:.2f}s seed loop", note=f"{args.requests} requests")  # fmt: skip
    figures.finish()


if __name__ == "__main__":
    main()
