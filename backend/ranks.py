"""What a data-parallel rank other than 0 keeps of a run: a private shadow directory, its
own log, and its error where rank 0 can report it.

Only rank 0 writes the run directory. Every other rank runs the same kind code in a
shadow: a copy of config.json and records.jsonl, and a mirror of checkpoints/ made of
real folders holding links to rank 0's files. The folders are the rank's own, so a
checkpoint swap in the shadow (rename the live folder aside, rename the staged one in,
remove the old one) only ever moves the rank's own entries and never reaches into
rank 0's checkpoints, and a file written by the kind replaces a link instead of
writing through it (every checkpoint write in labdeck goes through a staging folder or
an atomic rename).

The rank's log is `runner.rank<N>.log` in the run directory (the shadow's runner.log
links to it), so it outlives the shadow. A rank that fails writes
`runner.rank<N>.error.json`; rank 0 puts it into state.json when it fails in turn (a
rank's exception reaches rank 0 only as a closed connection in the next collective).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from .durable import OLD_PREFIX
from .jsonio import read_json, write_json_atomic
from .runs import ARTIFACTS, CHECKPOINTS, CONFIG, LOG, RECORDS

# How a collective fails when another rank has gone (gloo, NCCL, torch's wrappers).
COLLECTIVE_FAILURES = ("Connection closed", "Connection reset", "gloo", "NCCL", "DistBackendError")


def rank_log(run_dir: Path, rank: int) -> Path:
    return run_dir / f"runner.rank{rank}.log"


def rank_error_path(run_dir: Path, rank: int) -> Path:
    return run_dir / f"runner.rank{rank}.error.json"


def mirror_checkpoints(source: Path, target: Path) -> None:
    """Rebuild `source` under `target` as real folders with links to its files.

    Staging and `.old-` leftovers are skipped, except an `.old-X` with no `X` (a kill
    between the two renames of a swap): rank 0 puts that one back as `X` when it opens
    the run, so the mirror links it as `X` already and every rank resumes from the same
    checkpoint. Entries that vanish while rank 0 tidies up are skipped.
    """
    target.mkdir(parents=True, exist_ok=True)
    try:
        entries = sorted(source.iterdir())
    except OSError:
        return
    names = {e.name for e in entries}
    for entry in entries:
        name = entry.name
        if name.startswith("."):
            live = name[len(OLD_PREFIX) :] if name.startswith(OLD_PREFIX) else None
            if not live or live in names:
                continue
            name = live
        with contextlib.suppress(FileNotFoundError):
            if entry.is_dir():
                mirror_checkpoints(entry, target / name)
            else:
                (target / name).symlink_to(entry.resolve())


def make_shadow(run_dir: Path, rank: int) -> Path:
    """The private copy a non-zero rank runs in (see the module docstring)."""
    shadow = Path(tempfile.mkdtemp(prefix=f"labdeck-rank{rank}-"))
    shutil.copy2(run_dir / CONFIG, shadow / CONFIG)
    if (run_dir / RECORDS).is_file():
        shutil.copy2(run_dir / RECORDS, shadow / RECORDS)
    (shadow / ARTIFACTS).mkdir()
    mirror_checkpoints(run_dir / CHECKPOINTS, shadow / CHECKPOINTS)
    (shadow / LOG).symlink_to(rank_log(run_dir, rank).resolve())
    rank_error_path(run_dir, rank).unlink(missing_ok=True)  # an earlier attempt's
    return shadow


def record_rank_end(run_dir: Path, rank: int, status: str, error: str | None) -> None:
    """Leave a failed rank's error where rank 0 finds it (nothing for a clean end)."""
    if status == "failed" or error:
        write_json_atomic(
            rank_error_path(run_dir, rank),
            {"rank": rank, "status": status, "error": error, "pid": os.getpid()},
        )


def rank_errors(run_dir: Path) -> dict[str, dict[str, Any]]:
    """Errors the other ranks of the current attempt recorded, by rank."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(run_dir.glob("runner.rank*.error.json")):
        with contextlib.suppress(OSError, ValueError):
            data = read_json(path)
            out[str(data.get("rank", "?"))] = data
    return out


def with_rank_errors(
    run_dir: Path, error: str, world_size: int
) -> tuple[str, dict[str, dict[str, Any]]]:
    """Rank 0's error, led by the failing rank's own when one recorded it; when none did
    (a rank killed outright), the logs to look at."""
    errors = rank_errors(run_dir)
    if not errors and not any(w in error for w in COLLECTIVE_FAILURES):
        return error, {}
    if not errors:
        logs = ", ".join(rank_log(run_dir, r).name for r in range(1, world_size))
        return f"{error} (no other rank recorded an error; one may have been killed: {logs})", {}
    first = next(iter(errors.values()))
    return f"rank {first['rank']}: {first.get('error')} (rank 0: {error})", errors
