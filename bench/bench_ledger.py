"""Ledger: append-per-record JSON lines vs the seeds' single growing JSON file.

The seeds keep all results in one JSON document and rewrite it every N records,
so each save costs time proportional to the run so far (quadratic overall) and a
kill mid-write can lose the whole file. labdeck appends one line per record.

Prints, for the same records on both sides:
- total append time at equal size (labdeck vs seed way, alternating order) and the ratio;
- labdeck's per-record append cost early vs late in a 1 000 000-record run (flat?);
- resume scan time at equal size, labdeck vs loading the seed's JSON;
- what durability costs: the same records flushed only, group-committed (the
  ledger's default: fsync at most every SYNC_EVERY seconds, and on close), and
  fsynced one by one;
- the flatness goal: resume-scan time per record at 10k, 100k and 1M records (the
  smaller ledgers are the first lines of the largest, so the records are the same);
  the final line is max/min of those per-record times and the exit status is 1 when
  it exceeds the goal.

Usage: python bench/bench_ledger.py [--same 20000] [--sizes 10000,100000,1000000] [--quick]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from figures import Figures

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from labdeck.backend.ledger import SYNC_EVERY, Ledger, scan_keys, unit_key


def make_record(i: int, rng: random.Random) -> tuple[str, dict]:
    group, level, rep = ("attn", "mlp", "embed")[i % 3], (i // 3) % 10 * 0.05, i % 4
    prompt = f"Prompt number {i % 200}: describe a dream about the sea."
    rec = {
        "param_group_name": group,
        "std_dev": level,
        "repeat_index": rep,
        "prompt_text": prompt,
        "output": " ".join(
            rng.choice(("sea", "blue", "wave", "night", "ship", "light")) for _ in range(40)
        ),
        "tokens": 40,
        "batch_size_effective": 8,
    }
    return unit_key(group, level, rep, "mult_gauss", prompt, i), rec


def labdeck_append(path: Path, n: int) -> tuple[float, list[float]]:
    rng = random.Random(0)
    led = Ledger(path)
    chunk_times: list[float] = []
    t0 = time.perf_counter()
    tc = t0
    for i in range(n):
        key, rec = make_record(i, rng)
        led.append(key, rec)
        if (i + 1) % (n // 10) == 0:
            now = time.perf_counter()
            chunk_times.append((now - tc) / (n // 10))
            tc = now
    led.close()
    return time.perf_counter() - t0, chunk_times


def durable_append(path: Path, n: int, sync_every: float | None) -> tuple[float, int]:
    """Seconds to append and close `n` records, and the fsyncs that took."""
    rng = random.Random(0)
    records = [make_record(i, rng) for i in range(n)]
    path.unlink(missing_ok=True)
    led = Ledger(path, sync_every=sync_every)
    t0 = time.perf_counter()
    for key, rec in records:
        led.append(key, rec)
    led.close()
    return time.perf_counter() - t0, led.syncs


def fsync_cost(tmp: Path, n: int, rounds: int = 3) -> None:
    """Flush-only vs group commit vs fsync per record, same records, alternating order."""
    modes = {
        "flush only": None,
        f"group commit ({SYNC_EVERY * 1000:.0f} ms)": SYNC_EVERY,
        "fsync per record": 0.0,
    }
    best = {name: (float("inf"), 0) for name in modes}
    names = list(modes)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            t, syncs = durable_append(tmp / "fsync.jsonl", n, modes[name])
            if t < best[name][0]:
                best[name] = (t, syncs)
    base = best["flush only"][0]
    for name, (t, syncs) in best.items():
        print(
            f"durability, {n} records: {name}: {t:.3f} s ({t / n * 1e6:.1f} us/record, "
            f"{syncs} fsyncs)   x{t / base:.2f} of flush only"
        )


def seed_append(path: Path, n: int, every: int) -> float:
    rng = random.Random(0)
    results: list[dict] = []
    t0 = time.perf_counter()
    for i in range(n):
        key, rec = make_record(i, rng)
        results.append({"key": key, **rec})
        if (i + 1) % every == 0 or i == n - 1:
            with open(path, "w", encoding="utf-8") as fh:
                json.dump(results, fh)
    return time.perf_counter() - t0


def seed_scan(path: Path) -> tuple[float, int]:
    t0 = time.perf_counter()
    data = json.loads(path.read_text(encoding="utf-8"))
    done = {
        (r["param_group_name"], r["std_dev"], r["repeat_index"], r["prompt_text"]) for r in data
    }
    return time.perf_counter() - t0, len(done)


def copy_head(src: Path, dst: Path, n: int) -> None:
    """The first `n` record lines of `src`: a smaller ledger of exactly the same records."""
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        for _, line in zip(range(n), fin, strict=False):
            fout.write(line)


def best_scan(path: Path, n: int, repeats: int = 3) -> float:
    """Seconds for what resume does on open (repair the tail, collect done keys), best of
    `repeats`: the machine is shared, the minimum is the cost of the code itself."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        led = Ledger(path)
        best = min(best, time.perf_counter() - t0)
        assert len(led) == n, (path, len(led), n)
        led.close()
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--same", type=int, default=20_000, help="records appended by both sides")
    ap.add_argument("--every", type=int, default=100, help="seed way: rewrite the JSON every N")
    ap.add_argument(
        "--sizes", default="10000,100000,1000000", help="ledger sizes for the resume-scan flatness"
    )
    ap.add_argument("--flat-goal", type=float, default=1.5, help="largest per-record scan ratio")
    ap.add_argument("--quick", action="store_true", help="5000 records each, sizes up to 200k")
    args = ap.parse_args()
    if args.quick:
        args.same, args.sizes = 5_000, "10000,50000,200000"
    figures = Figures("bench_ledger")
    n_same, every = args.same, args.every
    sizes = sorted(int(x) for x in args.sizes.split(","))
    n_big = sizes[-1]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # equal work: both sides append the same n_same records, alternating which goes first
        t_lab_same = t_seed_same = float("inf")
        for r in range(2):
            for side in ("labdeck", "seed") if r % 2 == 0 else ("seed", "labdeck"):
                if side == "labdeck":
                    (tmp / "same.jsonl").unlink(missing_ok=True)
                    t_lab_same = min(t_lab_same, labdeck_append(tmp / "same.jsonl", n_same)[0])
                else:
                    t_seed_same = min(t_seed_same, seed_append(tmp / "seed.json", n_same, every))
        print(
            f"append {n_same} records (best of 2, alternating): labdeck {t_lab_same:.2f} s   "
            f"seed way (rewrite JSON every {every}) {t_seed_same:.2f} s   "
            f"ratio {t_seed_same / t_lab_same:.1f}x"
        )

        t_lab_big, chunks = labdeck_append(tmp / "big.jsonl", n_big)
        print(
            f"append {n_big} records: labdeck {t_lab_big:.2f} s; per-record cost by tenth of the run (us): "
            + " ".join(f"{c * 1e6:.1f}" for c in chunks)
        )
        flat_append = chunks[-1] / chunks[0]
        print(f"  last tenth / first tenth = {flat_append:.2f} (flat = about 1)")

        # resume scan, equal size on both sides: labdeck's ledger vs the seed's JSON (n_same)
        t_same_scan = best_scan(tmp / "same.jsonl", n_same)
        t_seed_scan = min(seed_scan(tmp / "seed.json")[0] for _ in range(3))
        print(
            f"resume scan {n_same} records: labdeck {t_same_scan:.3f} s   seed way {t_seed_scan:.3f} s"
            f"   ratio {t_seed_scan / t_same_scan:.1f}x"
        )
        fsync_cost(tmp, 1_000)
        print("durability measured above; flatness of the resume scan:")

        # flatness: scan time per record, from the smallest to the largest ledger
        per_record: dict[int, float] = {}
        for n in sizes:
            path = tmp / "big.jsonl"
            if n != n_big:
                path = tmp / f"head{n}.jsonl"
                copy_head(tmp / "big.jsonl", path, n)
            seconds = best_scan(path, n)
            per_record[n] = seconds / n
            print(f"  scan {n:>9} records: {seconds:.3f} s   {per_record[n] * 1e6:.2f} us/record")
        t0 = time.perf_counter()
        assert len(scan_keys(tmp / "big.jsonl")) == n_big
        print(f"  (full parse of every record, {n_big}: {time.perf_counter() - t0:.3f} s)")

    flatness = max(per_record.values()) / min(per_record.values())
    figures.add("ledger_append", t_seed_same / t_lab_same, "> 1", labdeck=f"{t_lab_same:.2f}s",
                baseline=f"{t_seed_same:.2f}s seed way", note=f"{n_same} records each")  # fmt: skip
    figures.add(
        "ledger_resume_scan", flatness, f"<= {args.flat_goal}",
        note=f"per-record scan time, max/min over {', '.join(str(n) for n in sizes)} records",
    )  # fmt: skip
    figures.finish()


if __name__ == "__main__":
    main()
