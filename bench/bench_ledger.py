"""Ledger: append-per-record JSON lines vs the seeds' single growing JSON file.

The seeds keep all results in one JSON document and rewrite it every N records,
so each save costs time proportional to the run so far (quadratic overall) and a
kill mid-write can lose the whole file. labdeck appends one line per record.

Prints, for the same records:
- total append time at equal size (labdeck vs seed way) and the ratio;
- labdeck's per-record append cost early vs late in a 100 000-record run (flat?);
- resume scan time of 100 000 records (goal < 0.5 s) vs loading the seed's JSON;
- what durability costs: the same records flushed only, group-committed (the
  ledger's default: fsync at most every SYNC_EVERY seconds, and on close), and
  fsynced one by one.
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
import time
from pathlib import Path

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


def main() -> None:
    n_big, n_same, every = 100_000, 20_000, 100
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t_lab_same, _ = labdeck_append(tmp / "same.jsonl", n_same)
        t_seed_same = seed_append(tmp / "seed.json", n_same, every)
        print(
            f"append {n_same} records: labdeck {t_lab_same:.2f} s   seed way (rewrite JSON every {every}) {t_seed_same:.2f} s   ratio {t_seed_same / t_lab_same:.1f}x"
        )

        t_lab_big, chunks = labdeck_append(tmp / "big.jsonl", n_big)
        print(
            f"append {n_big} records: labdeck {t_lab_big:.2f} s; per-record cost by tenth of the run (us): "
            + " ".join(f"{c * 1e6:.1f}" for c in chunks)
        )
        flat = chunks[-1] / chunks[0]
        print(f"  last tenth / first tenth = {flat:.2f} (flat = about 1)")

        # best of 3: the machine is shared, the minimum is the cost of the code itself
        t_scan = t_open = t_seed_scan = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            led = Ledger(tmp / "big.jsonl")  # what resume does: repair the tail, collect done keys
            t_scan = min(t_scan, time.perf_counter() - t0)
            assert len(led) == n_big
            led.close()
            t0 = time.perf_counter()
            assert len(scan_keys(tmp / "big.jsonl")) == n_big
            t_open = min(t_open, time.perf_counter() - t0)
            t_seed_scan = min(t_seed_scan, seed_scan(tmp / "seed.json")[0])
        print(
            f"resume scan {n_big} records: labdeck {t_scan:.3f} s (full parse of every record {t_open:.3f} s)   seed way, {n_same} records: {t_seed_scan:.3f} s"
        )
        fsync_cost(tmp, 1_000)
        print(
            f"ledger_append: ratio={t_seed_same / t_lab_same:.1f} (goal: append cost flat, seed/labdeck > 1)"
        )
        print(
            f"ledger_resume_scan: seconds={t_scan:.3f} flatness={flat:.2f} (goal < 0.5 s for 100000 records)"
        )


if __name__ == "__main__":
    main()
