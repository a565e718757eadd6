"""`labdeck export RUN --format seed-json`: the seed's single results file.

Analysis notebooks written for the seed read one JSON list per run named
`outputs_{method}_{model}_{suffix}.json`; this writes exactly that from
records.jsonl (every record field, without labdeck's internal `key`), in the
order the records were produced, so those notebooks keep working unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path

from ...errors import UserError
from ...jsonio import write_atomic
from ...jsonl import iter_jsonl
from ...ledger import DIGEST_FIELD
from ...runs import Run


def model_short_name(model: str) -> str:
    """`google/gemma-3-4b-it` → `gemma-3-4b-it`: the seed's `modelo_seleccionado`."""
    return model.rstrip("/").split("/")[-1]


def seed_json_name(method: str, model: str, suffix: str) -> str:
    parts = ["outputs", method, model_short_name(model)] + ([suffix] if suffix else [])
    return "_".join(parts) + ".json"


def export_seed_json(run: Run, out_dir: Path) -> Path:
    params = run.config.get("params", {})
    bookkeeping = ("key", DIGEST_FIELD)  # labdeck's resume fields, not the seed's contract
    records = [
        {k: v for k, v in r.items() if k not in bookkeeping} for r in iter_jsonl(run.records_path)
    ]
    if not records:
        raise UserError(f"{run.records_path}: no records to export yet")
    out_dir = Path(out_dir)
    if out_dir.suffix == ".json":
        dest = out_dir
    else:
        dest = out_dir / seed_json_name(
            params.get("method", "unknown"),
            params.get("model", "model"),
            params.get("name_suffix", ""),
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(dest, json.dumps(records, indent=2, ensure_ascii=False) + "\n")
    return dest


FORMATS = {"seed-json": export_seed_json}
