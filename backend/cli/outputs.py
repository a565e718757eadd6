"""Verbs that annotate a run or turn its records into files: tag, note, export, plot, eval."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..errors import UserError
from ..runs import resolve_run
from .common import results_of, run_of, say, targets_of


def cmd_tag(args: argparse.Namespace) -> int:
    from ..notes import edit_tags

    run = run_of(args)
    notes = edit_tags(
        run, add=[] if args.remove else args.tags, remove=args.tags if args.remove else []
    )
    print(f"{run.id}: tags {' '.join(notes.tags) or '(none)'}")
    return 0


def cmd_note(args: argparse.Namespace) -> int:
    from ..notes import read_notes, set_note

    run = run_of(args)
    if args.text is None:
        print(read_notes(run).note)
        return 0
    text = sys.stdin.read() if args.text == "-" else args.text
    notes = set_note(run, text)
    print(f"{run.id}: note {'set' if notes.note else 'cleared'}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from ..groups import find_group
    from ..reports import BASE_FORMATS, export, export_group

    runs = targets_of(args)
    for run in runs:
        out = Path(args.out) / run.id if args.out and len(runs) > 1 else args.out
        print(export(run, args.format, Path(out) if out else None))
    grp = find_group(results_of(args), args.run)
    if grp is not None and args.format in BASE_FORMATS:  # and the whole grid as one table
        out_dir = Path(args.out) if args.out else results_of(args) / ".groups" / grp.id
        print(export_group(grp, args.format, out_dir))
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from ..groups import find_group
    from ..reports import plot, plot_group, plot_runs

    grp = find_group(results_of(args), args.run[0]) if len(args.run) == 1 else None
    if grp is not None:
        out = Path(args.out) if args.out else results_of(args) / ".groups" / grp.id
        print(plot_group(grp, out, metric=args.metric, color=args.color, style=args.style))
        return 0
    runs = [resolve_run(results_of(args), token) for token in args.run]
    if len(runs) == 1:
        written = plot(runs[0], Path(args.out) if args.out else None)
    else:  # overlaid, styled by the parameters that differ
        stamp = time.strftime("%Y%m%d_%H%M%S")
        out = Path(args.out) if args.out else results_of(args) / "plots" / f"compare_{stamp}"
        written = plot_runs(runs, out)
    for p in written:
        print(p)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from ..kinds import kind_experiment
    from ..kinds.base import evaluate_run_hook
    from ..presets import resolve

    run = run_of(args)
    evaluate_run = evaluate_run_hook(kind_experiment(run.kind))
    if evaluate_run is None:
        raise UserError(f"kind {run.kind!r} has no separate evaluation phase")
    resolved = resolve(
        run.kind, run.config["params"], args.set, source=str(run.path / "config.json")
    )
    out = evaluate_run(run, resolved.model)
    from ..display import table

    say(
        table(
            "evaluation",
            ["metric", "value"],
            [[k, v] for k, v in out.items() if not isinstance(v, dict | list)],
        )
    )
    return 0
