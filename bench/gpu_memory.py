"""bench_gpu checks of memory: NVML vs nvidia-smi, the adaptive batch on a real sweep, a
second process taking memory mid-run, and the bisection logic on a simulated device.

Run as a script it is the helper process those checks start:
  python gpu_memory.py hold --gib G | --keep-free-gib K   allocate, print "held N", wait for stdin to close
  python gpu_memory.py feasible JSON                       bisection + bare generate, one JSON line out
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gpu_common import (
    REPO,
    Env,
    GiB,
    check,
    events,
    finish,
    random_llama,
    records,
    run_dirs,
    start_run,
)

# The sweep of adaptive_batch: long sampled generations over prompts of one length, under a
# ballast that leaves ROOM_GIB of the device free, so the limit is reached within minutes.
ROOM_GIB = 14.0
SWEEP_PROMPTS = 384
NEW_TOKENS = 192
LEVELS = [0.0, 0.05]
MAX_BATCH = 2048


def largest_feasible(
    fits: Callable[[int], bool], start: int, ceiling: int, tolerance: float = 0.0
) -> tuple[int, list[tuple[int, bool]]]:
    """The largest n <= ceiling with fits(n), by doubling from `start` and then bisecting.

    Assumes feasibility is monotone (if n fits, every smaller size does). Bisection stops
    when the gap is within `tolerance` of the lower bound (each probe of a real device is a
    whole generation); the result is then a size known to fit. Returns (size, probes).
    """
    probes: list[tuple[int, bool]] = []

    def probe(n: int) -> bool:
        ok = fits(n)
        probes.append((n, ok))
        return ok

    lo, hi = 0, ceiling + 1  # lo fits (0 trivially); hi does not (ceiling + 1 by definition)
    n = max(1, min(start, ceiling))
    if probe(n):
        lo = n
        while lo < ceiling:
            n = min(ceiling, lo * 2)
            if not probe(n):
                hi = n
                break
            lo = n
    else:
        hi = n
    while hi - lo > max(1, int(lo * tolerance)):
        mid = (lo + hi) // 2
        if probe(mid):
            lo = mid
        else:
            hi = mid
    return lo, probes


# --------------------------------------------------------------------------- helper process


class Holder:
    """A second process holding device memory until `release()` (or its own exit)."""

    def __init__(self, *, gib: float | None = None, keep_free_gib: float | None = None) -> None:
        arg = ["--gib", str(gib)] if gib is not None else ["--keep-free-gib", str(keep_free_gib)]
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__)), "hold", *arg],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line.startswith("held "):
            self.release()
            raise RuntimeError(
                f"memory-holding process did not start ({line.strip() or 'no output'})"
            )
        self.bytes = int(line.split()[1])
        self.pid = self.proc.pid
        self.since = time.time()

    def release(self) -> float:
        """Free the memory (the process exits); returns the time it was gone."""
        if self.proc.poll() is None:
            if self.proc.stdin:
                self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return time.time()


def _hold(gib: float | None, keep_free_gib: float | None) -> None:
    import torch

    chunks = []
    chunk = 256 * 2**20
    if gib is not None:
        chunks.append(torch.ones(int(gib * GiB), dtype=torch.uint8, device="cuda"))
    else:
        keep = int((keep_free_gib or 1.0) * GiB)
        while torch.cuda.mem_get_info()[0] - chunk > keep:
            try:
                chunks.append(torch.ones(chunk, dtype=torch.uint8, device="cuda"))
            except torch.OutOfMemoryError:
                break
    torch.cuda.synchronize()
    print(f"held {sum(c.numel() for c in chunks)}", flush=True)
    sys.stdin.read()  # until the parent closes it


# --------------------------------------------------------------------------- nvidia-smi


def smi(query: str, fields: str) -> list[list[str]]:
    out = subprocess.run(
        ["nvidia-smi", f"--query-{query}={fields}", "--format=csv,noheader,nounits"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    return [[c.strip() for c in line.split(",")] for line in out.splitlines() if line.strip()]


def _pct(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-9) * 100


def _apart(lab: float, ref: float, total: float) -> str:
    """How far labdeck's MiB figure is from nvidia-smi's: MiB, share of the device's memory
    (the strip's bar, what the goal reads) and share of the figure itself."""
    return (
        f"{abs(lab - ref):.0f} MiB apart = {_pct(lab, ref) * ref / total:.2f} % of total "
        f"({_pct(lab, ref):.2f} % of the figure)"
    )


@check("nvml", 0.04)
def nvml(env: Env) -> None:
    """The dashboard strip's NVML figures (backend/gpu.py) vs nvidia-smi, and per-process memory."""
    import pynvml
    import torch

    from labdeck.backend import gpu

    holder = Holder(gib=2.0)
    mine = torch.ones(GiB, dtype=torch.uint8, device=env.device)
    torch.cuda.synchronize()
    try:
        before = {r.device: r for r in gpu.probe_all()}
        rows = smi("gpu", "index,memory.used,memory.total,utilization.gpu,temperature.gpu")
        after = {r.device: r for r in gpu.probe_all()}
        env.emit("nvml.source", gpu.nvml_status())
        for index, used, total, util, temp in rows:
            label = next((k for k in before if k.endswith(f":{index}")), None)
            if label is None or before[label].source != "nvml":
                env.emit(f"nvml.gpu{index}", "no NVML reading for this GPU", status="error")
                continue
            mib = (before[label].used + after[label].used) / 2 / 2**20
            tot = before[label].total / 2**20
            env.emit(
                f"nvml.used.gpu{index}",
                f"labdeck {mib:.0f} MiB, nvidia-smi {used} MiB: {_apart(mib, float(used), tot)}",
                "within 1 % of total",
            )
            env.emit(
                f"nvml.total.gpu{index}",
                f"labdeck {tot:.0f} MiB, nvidia-smi {total} MiB, {_pct(tot, float(total)):.2f} % apart",
                "within 1 %",
            )
            env.emit(
                f"nvml.util_temp.gpu{index}",
                f"labdeck {before[label].util} % / {before[label].temperature} C, "
                f"nvidia-smi {util} % / {temp} C (utilisation is sampled: informational)",
            )
        apps = {int(pid): float(m) for pid, m in smi("compute-apps", "pid,used_memory")}
        total_mib = float(rows[0][2]) if rows else 1.0
        nv: dict[int, float] = {}
        gpu._NVML.ensure()
        for _, handle, _ in gpu._NVML.handles:
            for p in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
                if p.usedGpuMemory is not None:
                    nv[int(p.pid)] = p.usedGpuMemory / 2**20
        for who, pid in (("this", os.getpid()), ("second", holder.pid)):
            if pid not in apps or pid not in nv:
                env.emit(
                    f"nvml.process.{who}",
                    f"pid {pid} not listed (nvidia-smi: {pid in apps}, NVML: {pid in nv}); "
                    f"listed pids {sorted(apps)}",
                    status="error",
                )
                continue
            env.emit(
                f"nvml.process.{who}",
                f"NVML {nv[pid]:.0f} MiB, nvidia-smi {apps[pid]:.0f} MiB: "
                f"{_apart(nv[pid], apps[pid], total_mib)}",
                "within 1 % of total",
            )
    finally:
        del mine
        holder.release()


# --------------------------------------------------------------------------- adaptive batch


def prompt_texts(n: int) -> list[str]:
    """`n` prompts of one token length (numbers of one width), so any batch needs the same."""
    filler = " ".join(["the quiet river carried a lantern past the sleeping town"] * 12)
    return [f"Dream {i:05d}: retell this dream in detail. {filler}" for i in range(n)]


def _sweep_sets(model: Path, prompts: Path, **extra: Any) -> dict[str, Any]:
    return {
        "model": str(model),
        "dtype": "bfloat16",
        "device": "cuda:0",
        "method": "mult_gauss",
        "param_groups": ["mlp"],
        "levels": LEVELS,
        "max_batch_size": MAX_BATCH,
        "prompts.set": str(prompts),
        "generation.max_new_tokens": NEW_TOKENS,
        "generation.do_sample": True,
        **extra,
    }


def _generation_seconds(run: Path) -> float:
    """The sweep's own generation wall time (OOM retries included), from its log line."""
    for ev in events(run, "log"):
        msg = str(ev.get("message", ""))
        if msg.startswith("sweep finished:"):
            return float(msg.rsplit("generation ", 1)[1].rstrip("s"))
    raise RuntimeError(f"{run.name}: no 'sweep finished' line in events.jsonl")


def trajectory(run: Path) -> str:
    sizes = [(ev["size"], ev["reason"]) for ev in events(run, "batch")]
    text = " → ".join(f"{s}({r})" for s, r in sizes[:24])
    return text + (f" … ({len(sizes)} changes)" if len(sizes) > 24 else "")


def lost_and_doubled(run: Path, expected: int) -> tuple[int, int]:
    recs = records(run)
    keys = {r["key"] for r in recs}
    return expected - len(keys), len(recs) - len(keys)


@check("adaptive_batch", 0.34)
def adaptive_batch(env: Env) -> None:
    """The adaptive batch on a real degradation sweep (random 1.1 B bf16, long sampled generations)."""
    import torch

    folder, label = random_llama(env)
    texts = prompt_texts(SWEEP_PROMPTS)
    prompts = env.tmp / "adaptive-prompts.json"
    prompts.write_text(json.dumps(texts))
    results = env.tmp / "results-adaptive"
    results.mkdir(exist_ok=True)
    free, total = torch.cuda.mem_get_info()
    ballast = torch.ones(max(0, int(free - ROOM_GIB * GiB)), dtype=torch.uint8, device=env.device)
    env.emit(
        "adaptive_batch.setup",
        f"{label}; {len(texts)} prompts x {len(LEVELS)} levels, {NEW_TOKENS} new tokens, sampled; "
        f"max_batch_size {MAX_BATCH}; {ROOM_GIB:g} GiB of {total / GiB:.0f} GiB left free",
    )
    try:
        proc = start_run(
            results, _sweep_sets(folder, prompts), kind="degradation", title="gpu-adaptive"
        )
        finish(proc, max(180.0, env.left() * 0.6), "labdeck degradation run")
        run = run_dirs(results)[-1]
        env.shared["adaptive_run"] = run
        batch_events = events(run, "batch")
        ooms = sum(ev["reason"] == "oom" for ev in batch_events)
        recs = records(run)
        last_level = [r for r in recs if r["level_value"] == LEVELS[-1]]
        settled = max(r["batch_size_effective"] for r in last_level)
        lost, doubled = lost_and_doubled(run, len(texts) * len(LEVELS))
        tokens = sum(r["tokens_out"] for r in recs)
        lab_rate = tokens / _generation_seconds(run)
        env.emit("adaptive_batch.trajectory", trajectory(run))
        env.emit("adaptive_batch.ooms", ooms, "few, each retried with the same prompts")
        env.emit("adaptive_batch.units_lost", f"{lost} (doubled {doubled})", "0")
        worker = {
            "model": str(folder),
            "prompts": texts,
            "new_tokens": NEW_TOKENS,
            "start": settled,
            "ceiling": min(MAX_BATCH, len(texts)),
            "tolerance": 0.02,
            "deadline_s": max(60.0, env.left() - 10),
        }
        spec = env.tmp / "feasible.json"
        spec.write_text(json.dumps(worker))
        out = subprocess.run(
            [sys.executable, str(Path(__file__)), "feasible", str(spec)],
            capture_output=True,
            text=True,
            timeout=max(90.0, env.left()),
        )
        if out.returncode != 0:
            raise RuntimeError(
                f"bisection process failed: {(out.stderr.strip().splitlines() or ['?'])[-1]}"
            )
        res = json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        del ballast
        torch.cuda.empty_cache()
    feasible = res["feasible"]
    probes = ", ".join(f"{n}{'✓' if ok else '✗'}" for n, ok in res["probes"])
    env.emit(
        "adaptive_batch.settled_vs_feasible",
        f"{settled} / {feasible} = {settled / feasible:.2f} (bisection: {probes})",
        ">= 0.90",
    )
    bare_rate = res["tokens"] / res["seconds"]
    env.emit(
        "adaptive_batch.throughput",
        f"labdeck {lab_rate:.0f} tokens/s vs bare generate at batch {feasible} "
        f"{bare_rate:.0f} tokens/s: ratio {lab_rate / bare_rate:.2f}",
        ">= 0.90",
    )


def _feasible_worker(spec_path: str) -> None:
    """In its own process (the ballast's owner is the parent): bisection, then bare generate."""
    import torch

    from labdeck.backend.batching import free_memory, is_oom
    from labdeck.backend.generation import render
    from labdeck.backend.models import load_model
    from labdeck.backend.sampling import RowSampler, row_seed

    spec = json.loads(Path(spec_path).read_text())
    deadline = time.monotonic() + spec["deadline_s"]
    device = spec.get("device", "cuda:0")  # "cpu" only to rehearse this worker
    model, tok = load_model(
        spec["model"],
        dtype=spec.get("dtype", "bfloat16"),
        device_map=None if device == "cpu" else device,
    )

    def sync() -> None:
        if device != "cpu":
            torch.cuda.synchronize()

    texts = [render(tok, t) for t in spec["prompts"]]

    def bare(batch: list[str]) -> int:
        enc = tok(batch, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        sampler = RowSampler([row_seed(0, t) for t in batch], 1.0, 64, 0.95)
        with torch.inference_mode():
            out = model.generate(
                **enc,
                max_new_tokens=spec["new_tokens"],
                do_sample=False,
                temperature=None,
                top_k=None,
                top_p=None,
                logits_processor=[sampler],
                pad_token_id=tok.pad_token_id,
            )
        new = out[:, enc["input_ids"].shape[1] :]
        return int((new != tok.pad_token_id).sum())

    def fits(n: int) -> bool:
        if time.monotonic() > deadline:
            raise TimeoutError("bisection ran out of its time budget")
        failed = False
        try:
            bare((texts * (n // len(texts) + 1))[:n])
        except Exception as exc:
            if not is_oom(exc):
                raise
            failed = True
        free_memory()
        return not failed

    feasible, probes = largest_feasible(fits, spec["start"], spec["ceiling"], spec["tolerance"])
    sync()
    t0 = time.perf_counter()
    tokens = sum(bare(texts[i : i + feasible]) for i in range(0, len(texts), feasible))
    sync()
    seconds = time.perf_counter() - t0
    print(
        json.dumps({"feasible": feasible, "probes": probes, "tokens": tokens, "seconds": seconds})
    )


# --------------------------------------------------------------------------- second process


def _wait_for(
    run_dir: Callable[[], Path | None], predicate: Callable[[Path], bool], timeout: float
) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        run = run_dir()
        if run is not None and predicate(run):
            return True
        time.sleep(0.5)
    return False


@check("second_process", 0.16)
def second_process(env: Env) -> None:
    """Another process takes the free memory mid-run and gives it back: shrink, recover, lose nothing."""
    folder, _ = random_llama(env)
    n = 256
    levels = [round(0.01 * i, 2) for i in range(10)]
    texts = prompt_texts(n)
    prompts = env.tmp / "second-prompts.json"
    prompts.write_text(json.dumps(texts))
    results = env.tmp / "results-second"
    results.mkdir(exist_ok=True)
    sets = _sweep_sets(folder, prompts, levels=levels, max_batch_size=n)
    sets["generation.max_new_tokens"] = 128
    proc = start_run(results, sets, kind="degradation", title="gpu-second-process")

    def current() -> Path | None:
        dirs = run_dirs(results) if results.exists() else []
        return dirs[-1] if dirs else None

    def batches(run: Path) -> int:
        return sum(ev.get("done", 0) > 0 for ev in events(run, "progress"))

    def progressed(k: int) -> Callable[[Path], bool]:
        return lambda run: batches(run) >= k

    holder = None
    try:
        if not _wait_for(current, progressed(1), max(90.0, env.left() * 0.4)):
            raise RuntimeError("the run recorded no batch in time")
        holder = Holder(keep_free_gib=1.0)
        env.emit("second_process.held", f"{holder.bytes / GiB:.1f} GiB taken by pid {holder.pid}")
        run = current()
        held_at = batches(run) if run else 0
        # two batches under pressure: the policy reacts after the first of them
        _wait_for(current, progressed(held_at + 2), max(30.0, env.left() * 0.3))
        released = holder.release()
        finish(proc, max(120.0, env.left()), "labdeck degradation run")
    finally:
        if holder is not None:
            holder.release()
        if proc.poll() is None:
            proc.kill()
    run = current()
    assert run is not None
    changes = events(run, "batch")
    during = [e for e in changes if holder.since <= e["t"] < released]
    after = [e for e in changes if e["t"] >= released]
    shrank = [e for e in during if e["reason"] in ("shrink", "oom", "pause")]
    grew = [e for e in after if e["reason"] == "grow"]
    lost, doubled = lost_and_doubled(run, n * len(levels))
    env.emit("second_process.trajectory", trajectory(run))

    def listed(evs: list[dict[str, Any]]) -> str:
        return ", ".join(f"{e['size']}({e['reason']})" for e in evs) or "no change"

    env.emit("second_process.shrank", f"{'yes' if shrank else 'no'} ({listed(during)})", "yes")
    env.emit("second_process.recovered", f"{'yes' if grew else 'no'} ({listed(after)})", "yes")
    env.emit("second_process.units_lost", f"{lost} (doubled {doubled})", "0")


# --------------------------------------------------------------------------- CPU stand-in


@check("batch_bisection", 0.02, cuda=False)
def batch_bisection(env: Env) -> None:
    """CPU stand-in: the real controller over a simulated 80 GiB device; bisection vs a linear scan."""
    sys.path.insert(0, str(REPO / "tests"))
    import torch
    from simulated_device import SimulatedDevice

    from labdeck.backend.batching import BatchController, BatchPolicy
    from labdeck.backend.gpu import ProcessMemory

    def device(others: Callable[[int], int] = lambda _a: 0) -> SimulatedDevice:
        return SimulatedDevice(
            total=80 * GiB, model=6 * GiB, per_item=0.5 * GiB, growth=0.004, others=others
        )

    def sweep(dev: SimulatedDevice, n: int) -> tuple[list[tuple[int, str, int]], list[int], int]:
        """The controller as the sweep starts it (at its maximum); (size, reason, attempt)
        of each change, the items done, the last batch's size."""
        changes: list[tuple[int, str, int]] = []
        ctl = BatchController(
            512,
            1024,
            memory=ProcessMemory("cuda:0", cuda=dev, device_used=dev.device_used),
            on_change=lambda s, r: changes.append((s, r, dev.attempts)),
            policy=BatchPolicy(pause_seconds=0.0),
            sleep=lambda _s: None,
        )
        done: list[int] = []
        last = 0
        for batch in ctl.iter_batches(list(range(n)), dev.run):
            done.extend(batch.items)
            last = batch.size
        return changes, done, last

    items = list(range(3000))
    changes, done, last = sweep(device(), len(items))

    def fits(n: int) -> bool:
        try:
            device().run(list(range(n)))
        except torch.OutOfMemoryError:
            return False
        return True

    feasible, probes = largest_feasible(fits, start=last, ceiling=1024)
    scan = device().largest_feasible()
    env.emit("batch_bisection.trajectory", " → ".join(f"{s}({r})" for s, r, _ in changes))
    env.emit("batch_bisection.ooms", sum(r == "oom" for _, r, _ in changes))
    env.emit(
        "batch_bisection.bisection",
        f"{feasible} in {len(probes)} probes; linear scan {scan}",
        "equal",
        status="value" if feasible == scan else "error",
    )
    env.emit(
        "batch_bisection.settled_vs_feasible",
        f"{last} / {feasible} = {last / feasible:.2f}",
        ">= 0.90",
    )
    lost = len(set(items) - set(done))
    env.emit("batch_bisection.units_lost", f"{lost} (doubled {len(done) - len(set(done))})", "0")

    # second_process's stand-in: another process holds 25 GiB from batch 20 to batch 40
    def pressure(attempt: int) -> int:
        return 25 * GiB if 20 <= attempt < 40 else 0

    changes, done, _ = sweep(device(pressure), len(items))
    during = [f"{s}({r})" for s, r, a in changes if 20 <= a <= 40]
    after = [f"{s}({r})" for s, r, a in changes if a > 40]
    shrank = any("shrink" in c or "oom" in c for c in during)
    grew = any("grow" in c for c in after)
    env.emit(
        "batch_bisection.pressure",
        f"shrank {'yes' if shrank else 'no'} ({', '.join(during) or 'no change'}), "
        f"grew back {'yes' if grew else 'no'} ({', '.join(after) or 'no change'}), "
        f"lost {len(set(items) - set(done))}, doubled {len(done) - len(set(done))}",
        "shrinks, grows back, 0 lost",
        status="value" if shrank and grew and sorted(done) == items else "error",
    )


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from gpu_common import ensure_labdeck_importable

    ensure_labdeck_importable()
    if sys.argv[1] == "hold":
        opt = dict(zip(sys.argv[2::2], sys.argv[3::2], strict=True))
        _hold(
            float(opt["--gib"]) if "--gib" in opt else None,
            float(opt["--keep-free-gib"]) if "--keep-free-gib" in opt else None,
        )
    elif sys.argv[1] == "feasible":
        _feasible_worker(sys.argv[2])
