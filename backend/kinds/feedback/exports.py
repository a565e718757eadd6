"""`labdeck export RUN --format seed-json`: the seed's `-o` files of a feedback run.

The processed conversations (`process_conversations.py -o`) and the evaluation summary
(`evaluate.py -o`), as written to artifacts/ at the end of their stages, copied into the
chosen folder so analysis written for the seed reads them unchanged.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ...errors import UserError
from ...runs import ARTIFACTS, Run

FILES = ("processed.json", "eval_summary.json")


def export_seed_json(run: Run, out_dir: Path) -> Path:
    """Copies the files into `out_dir`; without `--out` that is artifacts/ itself, where
    they already are, so nothing is copied and their path is returned."""
    found = [run.path / ARTIFACTS / f for f in FILES if (run.path / ARTIFACTS / f).is_file()]
    if not found:
        raise UserError(f"{run.path / ARTIFACTS}: no processed.json or eval_summary.json yet")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for f in found:
        dest = out_dir / f.name
        if not (dest.exists() and dest.samefile(f)):
            shutil.copyfile(f, dest)
    return out_dir / found[-1].name


FORMATS = {"seed-json": export_seed_json}
