"""`reproduce` and `compare`: a run rerun from its config.json, and the judgement of
two runs (or groups) against each other.
"""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

from pydantic import ValidationError
from rich.text import Text

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
    try:
        params = cfg.Params.model_validate(
            with_added_params(cfg, original.config.get("params", {}))
        )
    except ValidationError as exc:
        raise UserError(_no_longer_valid(original, exc)) from None
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


def _no_longer_valid(original: Run, exc: ValidationError) -> str:
    """One line for recorded parameters that fail validation today: most often an input
    file a validator reads (a conversations file, a dataset) was edited since the run."""
    from ..inputs import changed_since_recorded

    err = exc.errors()[0]
    loc = ".".join(str(x) for x in err.get("loc", ())) or "params"
    msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
    changed = changed_since_recorded(original.config.get("inputs") or {})
    why = "; ".join(changed) if changed else "the parameters no longer validate"
    return f"{original.id}: cannot reproduce: {why}; params.{loc} is now refused: {msg}"


def cmd_reproduce(args: argparse.Namespace) -> int:
    runs = targets_of(args)
    codes = [_reproduce_one(args, r) for r in runs]
    return max(codes) if codes else 0


def _reproduce_one(args: argparse.Namespace, original: Run) -> int:
    from ..launch import launch_detached
    from ..runs import CONFIG, LOG, check_results_writable, create_run_dir, repro_run_id
    from . import main

    results = results_of(args)
    text = (original.path / CONFIG).read_text(encoding="utf-8")
    command = original.config.get("commands", {}).get("run_explicit")
    if not command:
        raise UserError(f"{original.path / CONFIG}: no commands.run_explicit to reproduce from")
    _refuse_changed_inputs(original, results)
    check_results_writable(results)
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
    """A reproduction's short id carries `r` (`734429r`); one named otherwise is marked."""
    label = _plain_label(run)
    if label == _plain_label(other):
        label = run.id
    return label


def _plain_label(run: Run) -> str:
    from ..runs import is_repro_id

    marked = run.state().get("reproduction_of") and not is_repro_id(run.id)
    return run.short_id + ("·repro" if marked else "")


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
            rows.append([m.short_id, Text(json.dumps(coords)), "-", "-", Text(str(exc), "red")])
            continue
        if b is None:
            ok = False
            rows.append([m.short_id, Text(json.dumps(coords)), "-", "-", "[red]no counterpart[/]"])
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
                Text(" ".join(f"{k}={json.dumps(v)}" for k, v in coords.items())),
                b.short_id,
                fmt_value(worst, 6),
                verdict,
            ]
        )
    tol = "each outcome at its kind's tolerance" if args.tol is None else f"{args.tol:g}"
    say(f"group {grp.id}  tolerance: {tol}")
    say(table(None, ["run", "grid point", "other", "max diff", "status"], rows))
    return 0 if ok else 1


def _compare_env(args: argparse.Namespace, a: Run, b: Run) -> int:
    """`compare --env`: package versions, commit and dirty flag, device, side by side."""
    from ..display import table
    from ..envdiff import env_diff

    rows = env_diff(a, b)
    if args.json:
        print(
            json.dumps(
                {"a": a.id, "b": b.id, "env": [r.__dict__ | {"differs": r.differs} for r in rows]},
                indent=2,
            )
        )
        return 0
    say(f"A: {a.id}\nB: {b.id}", markup=False)
    say(
        table(
            "environment",
            ["field", _compare_label(a, b), _compare_label(b, a), ""],
            [[r.name, r.a, r.b, "≠" if r.differs else ""] for r in rows],
        ),
        markup=False,
    )
    differing = [r.name for r in rows if r.differs]
    say("differs: " + (", ".join(differing) if differing else "nothing recorded"), markup=False)
    return 0


def _compare_pair(args: argparse.Namespace) -> int:
    from ..compare import compare_runs, counterpart
    from ..display import fmt_value, table

    results = results_of(args)
    a = run_of(args)
    b = resolve_run(results, args.other) if args.other else counterpart(results, a)
    if getattr(args, "env", False):
        return _compare_env(args, a, b)
    cmp = compare_runs(a, b, args.tol)
    exit_code = (
        {"PASS": 0, "FAIL": 1, "pending": 3}[cmp.verdict] if cmp.metrics or cmp.pending else 1
    )
    if args.json:
        print(json.dumps(cmp.as_dict(), indent=2, ensure_ascii=False, default=str))
        return exit_code
    from ..reports import caption

    tol = "per metric (the kind's declared tolerances)" if args.tol is None else f"{args.tol:g}"
    say(f"original: {a.id}\nother:    {b.id}\ntolerance: {tol}", markup=False)
    if counted := caption([a, b]):  # how the numbers were counted; a/b when they differ
        say(f"counted:  {counted}", markup=False)
    if cmp.pending:
        say(
            f"[yellow]pending:[/] {', '.join(cmp.pending)} has not finished; "
            "compare again when it has"
        )
    style = {"PASS": "[green]PASS[/]", "FAIL": "[red]FAIL[/]", "pending": "[yellow]pending[/]"}
    rows = [
        [
            Text(m.name),  # metric names such as ppl[attn] are not markup
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
