"""`labdeck run`: a preset (or a kind) with overrides becomes a run directory, a grid
of them, or a dry-run estimate.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..runs import Run
from .common import (
    execute_foreground,
    inside_torchrun,
    launch_by_resources,
    launch_runs,
    model_revision,
    results_of,
    say,
)

# Runs a grid may have before `run` asks for --yes.
LARGE_GRID = 1000


def _resolve_args(args: argparse.Namespace):
    from ..presets import load_preset, resolve

    if args.preset and args.kind:
        raise UserError("give a preset file or --kind, not both")
    if args.preset:
        preset = load_preset(args.preset)
        resolved = resolve(
            preset.kind, preset.params, args.set, source=str(preset.path), results=results_of(args)
        )
        title = args.title or preset.title
    elif args.kind:
        preset = None
        resolved = resolve(
            args.kind, {}, args.set, source=f"--kind {args.kind}", results=results_of(args)
        )
        title = args.title or args.kind
    else:
        raise UserError("run needs a preset file (see `labdeck presets`) or --kind KIND")
    return preset, resolved, title


def _new_run(
    results: Path, preset, resolved, title: str, fields: dict[str, Any] | None = None
) -> Run:
    """Create the run directory; `fields` adds to config.json (group, launcher)."""
    from ..envinfo import environment
    from ..inputs import record_inputs
    from ..kinds import kind_config
    from ..kinds.base import extra_commands_hook, primary_metric
    from ..presets import explicit_command
    from ..runs import create_run_dir, new_run_id

    cfg = kind_config(resolved.kind)
    run_id = new_run_id(results, resolved.kind, title)
    commands = {"run_explicit": explicit_command(resolved.kind, title, resolved.params)}
    extra = extra_commands_hook(cfg)
    if extra:
        commands.update(extra(run_id, resolved.params))
    config = {
        "run_id": run_id,
        "kind": resolved.kind,
        "title": title,
        "description": getattr(preset, "description", "") or cfg.DESCRIPTION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "primary_metric": primary_metric(cfg),
        "defaults": resolved.defaults,
        "overrides": resolved.overrides,
        "params": resolved.params,
        "preset": None
        if preset is None
        else {"path": str(preset.path), "sha256": preset.sha256, "extends": preset.chain},
        "commands": commands,
        "md5": resolved.md5,
        "inputs": record_inputs(resolved.inputs),
        "model": model_revision(resolved.params),
        "env": environment(),
        **(fields or {}),
    }
    results.mkdir(parents=True, exist_ok=True)
    return create_run_dir(results, run_id, json.dumps(config, indent=2, ensure_ascii=False) + "\n")


def _launcher_options(args: argparse.Namespace, preset):
    from ..launchers import parse_options

    source = str(preset.path) if preset is not None else "--launcher"
    return parse_options(
        getattr(preset, "launcher", None), args.launcher, args.launch, source=source
    )


def _grid_axes(args: argparse.Namespace, preset):
    from ..grid import merge_axes, parse_grid_flag, table_axes

    from_preset = table_axes(preset.grid, str(preset.path)) if preset and preset.grid else []
    return merge_axes(from_preset, [parse_grid_flag(g) for g in args.grid])


def _dry_run_report(resolved):
    from ..kinds import kind_experiment

    return kind_experiment(resolved.kind).dry_run(resolved.model)


def _md5_as_recorded(run: Run, resolved) -> str:
    """md5 of the resolved parameters in the recorded run's terms: parameters the kind
    added after the run was made (filled in by `reproduce`) are not part of its md5."""
    from ..kinds import kind_config
    from ..kinds.spec import added_params
    from ..presets import params_md5

    added = added_params(kind_config(resolved.kind))
    recorded = run.config.get("params", {})
    absent = {k for k in added if k not in recorded}
    return params_md5({k: v for k, v in resolved.params.items() if k not in absent})


def cmd_run(args: argparse.Namespace) -> int:
    from ..runs import check_results_writable

    preset, resolved, title = _resolve_args(args)
    options = _launcher_options(args, preset)
    axes = _grid_axes(args, preset)
    if not args.dry_run and not args.into:
        check_results_writable(results_of(args))
    if axes:
        return _run_grid(args, preset, resolved, title, options, axes)
    if args.dry_run:
        report = _dry_run_report(resolved)
        if args.json:
            print(
                json.dumps(
                    {**report.as_dict(), "overrides": resolved.overrides, "md5": resolved.md5}
                )
            )
        else:
            from ..display import fmt_bytes, fmt_duration

            for line in report.lines:
                say(line)
            say(
                f"units: {report.units}   memory: {fmt_bytes(report.memory_bytes)}   "
                f"time: ~{fmt_duration(report.seconds)}"
            )
        return 0
    if args.into:
        run = Run(Path(args.into))
        if run.config.get("md5") != _md5_as_recorded(run, resolved):
            raise UserError(
                f"{run.path}/config.json: md5 {run.config.get('md5')} differs from the explicit "
                f"command's parameters ({resolved.md5}); the reproduction would not be faithful"
            )
    else:
        run = _new_run(
            results_of(args), preset, resolved, title, {"launcher": options.model_dump(mode="json")}
        )
    if options.name != "local":
        return launch_runs(args, [run], options)
    if args.detach:
        from ..launchers import submit

        message = submit([run], options, results_of(args), foreground=False)
        print(run.id)
        if not args.quiet:
            print(
                f"{message}; follow with `labdeck` or `labdeck show {run.short_id}`",
                file=sys.stderr,
            )
        return 0
    if options.processes > 1 and not inside_torchrun():
        return launch_runs(args, [run], options)
    if not args.quiet:
        say(f"[bold]{run.id}[/]  {run.path}")
    return execute_foreground(run, args.quiet)


def _run_grid(args, preset, resolved, title, options, axes) -> int:
    """Expand, validate every member, then create them all (queued) and launch them."""
    from ..grid import expand, grid_size, new_group_id
    from ..groups import list_groups

    if args.into:
        raise UserError("--grid cannot be combined with a reproduction")
    size = grid_size(axes)
    if size > LARGE_GRID and not (args.yes or args.dry_run):
        raise UserError(
            f"--grid: {size} runs ({' × '.join(f'{a.key}({len(a.values)})' for a in axes)}); "
            f"a grid of more than {LARGE_GRID} runs starts only with --yes"
        )
    source = str(preset.path) if preset is not None else f"--kind {resolved.kind}"
    members = expand(resolved.kind, getattr(preset, "params", {}) or {}, args.set, axes, source)
    if args.dry_run:
        return _grid_dry_run(args, members, axes)
    results = results_of(args)
    gid = new_group_id(set(list_groups(results)))
    axes_json = {a.key: a.values for a in axes}
    member_options = [_member_launcher(args, preset, m, options) for m in members]
    runs = []
    for m, own in zip(members, member_options, strict=True):
        group = {
            "id": gid,
            "title": title,
            "axes": axes_json,
            "coords": m.coords,
            "index": m.index,
            "size": len(members),
        }
        extra = {"group": group, "launcher": own.model_dump(mode="json")}
        runs.append(_new_run(results, preset, m.resolved, m.title(title), extra))
    if not args.quiet:
        say(f"[bold]group {gid}[/]: {len(runs)} runs of {resolved.kind} ({options.name})")
    code = launch_by_resources(args, runs)
    if args.detach or options.name != "local":
        print(gid)
    return code


def _member_launcher(args: argparse.Namespace, preset, member, options):
    """The launcher options of one grid member: the run's, with its `launch.*` axes
    (every member is validated before any run directory exists)."""
    from ..grid import launcher_sets
    from ..launchers import parse_options

    extra = launcher_sets(member.coords)
    if not extra:
        return options
    source = f"--grid {member.label()}"
    blame = {s.partition("=")[0]: f"--grid launch.{s}" for s in extra}
    return parse_options(
        getattr(preset, "launcher", None),
        args.launcher,
        [*args.launch, *extra],
        source=source,
        blame=blame,
    )


def _grid_dry_run(args, members, axes) -> int:
    from ..display import fmt_bytes, fmt_duration, table

    rows, out = [], []
    total_s, peak_mem, total_units, unknown = 0.0, None, 0, 0
    for m in members:
        rep = _dry_run_report(m.resolved)
        total_units += rep.units
        total_s += rep.seconds or 0.0
        unknown += rep.seconds is None
        if rep.memory_bytes is not None:
            peak_mem = max(peak_mem or 0, rep.memory_bytes)
        out.append(
            {
                "coords": m.coords,
                "overrides": m.resolved.overrides,
                "md5": m.resolved.md5,
                **rep.as_dict(),
            }
        )
        rows.append(
            [
                str(m.index),
                m.label(),
                ", ".join(f"{k}={json.dumps(v)}" for k, v in m.resolved.overrides.items()),
                str(rep.units),
                fmt_bytes(rep.memory_bytes),
                f"~{fmt_duration(rep.seconds)}",
            ]
        )
    if args.json:
        print(json.dumps({"axes": {a.key: a.values for a in axes}, "members": out}))
        return 0
    say(
        table(
            f"grid: {len(members)} runs ({' × '.join(str(len(a.values)) for a in axes)})",
            ["#", "grid point", "overrides", "units", "memory", "time"],
            rows,
            wrap=("overrides",),
        )
    )
    time_text = f"~{fmt_duration(total_s)}" if unknown < len(members) else "not estimated"
    if 0 < unknown < len(members):
        time_text = f"at least {time_text} ({unknown} runs not estimated)"
    say(
        f"total: {len(members)} runs   units: {total_units}   memory (largest run): "
        f"{fmt_bytes(peak_mem) if peak_mem is not None else 'not estimated'}   "
        f"time (one after another): {time_text}"
    )
    return 0
