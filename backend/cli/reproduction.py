"""`reproduce` and `compare`: a run rerun from its config.json, and the judgement of
two runs (or groups) against each other.
"""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

from ..errors import UserError
from ..runs import Run, resolve_run
from .common import model_revision, results_of, run_of, say, targets_of


def _added_param_sets(original: Run) -> list[str]:
    """`--set` flags for parameters the kind gained after `original` was recorded: its
    explicit command predates them, and without them today's defaults would apply."""
    from ..kinds import kind_config
    from ..kinds.spec import added_params
    from ..presets import toml_value

    recorded = original.config.get("params", {})
    added = added_params(kind_config(original.kind))
    out: list[str] = []
    for key, value in added.items():
        if key not in recorded:
            out += ["--set", f"{key}={toml_value(value)}"]
    return out


def _refuse_changed_inputs(original: Run, results: Path) -> None:
    """A reproduction must read what the original read; say exactly what differs if not."""
    from ..inputs import changed_inputs
    from ..kinds import kind_config
    from ..kinds.spec import with_added_params

    cfg = kind_config(original.kind)
    params = cfg.Params.model_validate(with_added_params(cfg, original.config.get("params", {})))
    source = f"{original.path / 'config.json'}"
    changes = changed_inputs(original.config.get("inputs", {}), params, results, source)
    recorded_model = original.config.get("model")
    if recorded_model:
        from ..model_revision import revision_changes

        now = model_revision(original.config.get("params", {}))
        changes += revision_changes(recorded_model, now or {})
    if changes:
        raise UserError(
            f"{original.id}: inputs changed since the run, a reproduction would differ: "
            + "; ".join(changes)
        )


def cmd_reproduce(args: argparse.Namespace) -> int:
    runs = targets_of(args)
    codes = [_reproduce_one(args, r) for r in runs]
    return max(codes) if codes else 0


def _reproduce_one(args: argparse.Namespace, original: Run) -> int:
    from ..launch import launch_detached
    from ..runs import CONFIG, LOG, create_run_dir, repro_run_id
    from . import main

    results = results_of(args)
    text = (original.path / CONFIG).read_text(encoding="utf-8")
    command = original.config.get("commands", {}).get("run_explicit")
    if not command:
        raise UserError(f"{original.path / CONFIG}: no commands.run_explicit to reproduce from")
    _refuse_changed_inputs(original, results)
    repro = create_run_dir(results, repro_run_id(results, original.id), text)
    repro.write_state(reproduction_of=original.id)
    argv = [*shlex.split(command)[1:], *_added_param_sets(original), "--into", str(repro.path)]
    if args.detach:
        launch_detached([*argv, "--quiet"], results, repro.path / LOG)
        print(repro.id)
        return 0
    say(f"reproducing {original.id} as {repro.id}")
    return main([*argv, *(["--quiet"] if args.quiet else [])])


def _compare_label(run: Run, other: Run) -> str:
    """Two runs share their 6-digit id when one reproduces the other: tell them apart."""
    label = run.short_id
    if run.state().get("reproduction_of") or run.id.endswith("_repro"):
        label += "·repro"
    if label == _plain_label(other):
        label = run.id
    return label


def _plain_label(run: Run) -> str:
    return run.short_id + ("·repro" if run.state().get("reproduction_of") else "")


def cmd_compare(args: argparse.Namespace) -> int:
    from ..groups import find_group

    results = results_of(args)
    if find_group(results, args.run) is not None:
        return _compare_group(args)
    return _compare_pair(args)


def _compare_group(args: argparse.Namespace) -> int:
    """GROUP [OTHER_GROUP]: members paired by grid point (or each with its reproduction)."""
    from ..compare import compare_runs, counterpart
    from ..display import fmt_value, table
    from ..groups import find_group, group_of, resolve_targets

    results = results_of(args)
    grp = find_group(results, args.run)
    other = {}
    if args.other:
        for r in resolve_targets(results, args.other):
            other[json.dumps((group_of(r) or {}).get("coords"), sort_keys=True)] = r
    rows, ok = [], True
    for m in grp.members:
        coords = grp.coords(m)
        try:
            b = (
                other.get(json.dumps(coords, sort_keys=True))
                if args.other
                else counterpart(results, m)
            )
        except UserError as exc:
            b, ok = None, False
            rows.append([m.short_id, json.dumps(coords), "-", "-", f"[red]{exc}[/]"])
            continue
        if b is None:
            ok = False
            rows.append([m.short_id, json.dumps(coords), "-", "-", "[red]no counterpart[/]"])
            continue
        cmp = compare_runs(m, b, args.tol)
        worst = max((r.diff for r in cmp.outcomes if r.diff is not None), default=None)
        ok = ok and (cmp.all_passed or bool(cmp.pending))
        if cmp.pending:
            verdict = "[yellow]pending[/]"
        else:
            verdict = "[green]PASS[/]" if cmp.all_passed else "[red]FAIL[/]"
        rows.append(
            [
                m.short_id,
                " ".join(f"{k}={json.dumps(v)}" for k, v in coords.items()),
                b.short_id,
                fmt_value(worst, 6),
                verdict,
            ]
        )
    tol = "each outcome at its kind's tolerance" if args.tol is None else f"{args.tol:g}"
    say(f"group {grp.id}  tolerance: {tol}")
    say(table(None, ["run", "grid point", "other", "max diff", "status"], rows))
    return 0 if ok else 1


def _compare_pair(args: argparse.Namespace) -> int:
    from ..compare import compare_runs, counterpart
    from ..display import fmt_value, table

    results = results_of(args)
    a = run_of(args)
    b = resolve_run(results, args.other) if args.other else counterpart(results, a)
    cmp = compare_runs(a, b, args.tol)
    exit_code = (
        {"PASS": 0, "FAIL": 1, "pending": 3}[cmp.verdict] if cmp.metrics or cmp.pending else 1
    )
    if args.json:
        print(json.dumps(cmp.as_dict(), indent=2, ensure_ascii=False, default=str))
        return exit_code
    tol = "per metric (the kind's declared tolerances)" if args.tol is None else f"{args.tol:g}"
    say(f"original: {a.id}\nother:    {b.id}\ntolerance: {tol}", markup=False)
    if cmp.pending:
        say(
            f"[yellow]pending:[/] {', '.join(cmp.pending)} has not finished; "
            "compare again when it has"
        )
    style = {"PASS": "[green]PASS[/]", "FAIL": "[red]FAIL[/]", "pending": "[yellow]pending[/]"}
    rows = [
        [
            m.name,
            fmt_value(m.a, 6),
            fmt_value(m.b, 6),
            fmt_value(m.diff, 6),
            f"{m.tol:g}" if m.role == "outcome" else "-",
            style.get(m.verdict)
            or (f"[dim]ratio {m.ratio:.3f}[/]" if m.ratio is not None else "[dim]info[/]"),
        ]
        for m in cmp.metrics
    ]
    say(
        table(
            "final metrics",
            [
                "Metric",
                "Original",
                "Repro" if b.state().get("reproduction_of") else "Other",
                "Diff",
                "Tol",
                "Status",
            ],
            rows,
        )
    )
    if any(m.role == "measurement" for m in cmp.metrics):
        say(
            "[dim]measurements (time, throughput) show other/original and never fail a comparison[/]"
        )
    if cmp.params:
        say(
            table(
                "parameters that differ",
                ["parameter", _compare_label(a, b), _compare_label(b, a)],
                [[p.key, json.dumps(p.a), json.dumps(p.b)] for p in cmp.params],
            ),
            markup=False,
        )
    else:
        say("parameters: identical")
    if not cmp.metrics and not cmp.pending:
        say("[yellow]no final metrics to compare (are both runs completed?)[/]")
    return exit_code
