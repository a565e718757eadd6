import random
import time

from labdeck.backend.kinds.base import DryRun, RunContext
from labdeck.backend.ledger import unit_key


def value_of(seed: int, i: int, scale: float) -> float:
    return round(random.Random(seed * 100003 + i).random() * scale, 12)


def _library_noise() -> None:
    """What libraries print during a real run: transformers' own stderr handler, a
    FutureWarning, and a record of a logger without handlers (bitsandbytes at import)."""
    import logging
    import warnings

    from transformers.utils import logging as hf_logging

    hf_logging.get_logger("transformers.noise").warning("NOISE-transformers-logger")
    warnings.warn("NOISE-future-warning", FutureWarning, stacklevel=1)
    logging.getLogger("bitsandbytes.noise").warning("NOISE-last-resort")


def run(ctx: RunContext) -> dict[str, float]:
    p = ctx.params
    if p.library_noise:
        _library_noise()
    data = ctx.input_path("data")
    extra = len(data.read_text().splitlines()) if data else 0
    ctx.phase("count", p.units)
    done = sum(1 for i in range(p.units) if ctx.is_done(unit_key("unit", i)))
    for i in range(p.units):
        key = unit_key("unit", i)
        if ctx.is_done(key):
            continue
        ctx.check_stop()
        if i == p.fail_at:
            raise RuntimeError(f"planned failure at unit {i}" + (f": {p.note}" if p.note else ""))
        time.sleep(p.unit_seconds)
        value = value_of(p.seed, i, p.inner.scale) + extra
        ctx.record(key, {"i": i, "value": value, "note": p.note, "batch_size": 1})
        done += 1
        ctx.progress(done)
        ctx.metric("value", value_of(p.seed, i, p.inner.scale), step=i)
    total = sum(r["value"] for r in ctx.ledger.records())
    return {"total": round(total, 9), "units": float(p.units)}


def dry_run(params) -> DryRun:
    return DryRun(
        units=params.units,
        memory_bytes=0,
        seconds=params.units * params.unit_seconds,
        lines=["counter"],
    )
