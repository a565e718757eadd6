"""`labdeck`: every verb of the command line. With no arguments it opens the dashboard.

Each verb is a small function over the run directory; errors caused by input are
`UserError`s, printed as one line with exit status 2.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from .errors import UserError
from .runs import RESUMABLE, Run, default_results_dir, resolve_run

EXIT = {"completed": 0, "interrupted": 130, "failed": 1}


# --------------------------------------------------------------------------- helpers


def _results(args: argparse.Namespace) -> Path:
    return Path(args.results) if getattr(args, "results", None) else default_results_dir()


def _run_of(args: argparse.Namespace, attr: str = "run") -> Run:
    return resolve_run(_results(args), getattr(args, attr))


def _print(*objs: Any, markup: bool = True) -> None:
    from .display import console

    console.print(*objs, markup=markup)


def _finish(run: Run, status: str, quiet: bool) -> int:
    if not quiet:
        from .display import table

        state = run.state()
        style = {"completed": "green", "interrupted": "yellow"}.get(status, "red")
        _print(f"[{style}]{status}[/] {run.id}  ({state.get('records', 0)} records)")
        if state.get("last_error"):
            _print(f"[red]error:[/] {state['last_error']}")
        final = run.summary().get("final_metrics") if status == "completed" else None
        if final:
            _print(table("final metrics", ["metric", "value"], [[k, v] for k, v in final.items()]))
        if status in ("interrupted", "failed"):
            _print(f"resume with: labdeck resume {run.short_id}")
    return EXIT.get(status, 1)


def _execute(run: Run, quiet: bool) -> int:
    from .runner import execute

    if quiet:
        return _finish(run, execute(run), quiet)
    from .display import LiveProgress, PlainProgress, piped

    # A pipe or a log file gets plain lines; redrawn bars would fill it with escapes.
    with PlainProgress() if piped() else LiveProgress() as live:
        status = execute(run, listener=live, console=not piped())
    return _finish(run, status, quiet)


# --------------------------------------------------------------------------- run


def _resolve_args(args: argparse.Namespace):
    from .presets import load_preset, resolve

    if args.preset and args.kind:
        raise UserError("give a preset file or --kind, not both")
    if args.preset:
        preset = load_preset(args.preset)
        resolved = resolve(
            preset.kind, preset.params, args.set, source=str(preset.path), results=_results(args)
        )
        title = args.title or preset.title
    elif args.kind:
        preset = None
        resolved = resolve(
            args.kind, {}, args.set, source=f"--kind {args.kind}", results=_results(args)
        )
        title = args.title or args.kind
    else:
        raise UserError("run needs a preset file (see `labdeck presets`) or --kind KIND")
    return preset, resolved, title


def _model_revision(params: dict[str, Any]) -> dict[str, Any] | None:
    """What the run's `model` parameter resolves to now (kinds without one: None)."""
    from .model_revision import resolve_revision

    spec = params.get("model")
    return resolve_revision(spec) if isinstance(spec, str) and spec else None


def _new_run(
    results: Path, preset, resolved, title: str, fields: dict[str, Any] | None = None
) -> Run:
    """Create the run directory; `fields` adds to config.json (group, launcher)."""
    from .envinfo import environment
    from .inputs import record_inputs
    from .kinds import kind_config
    from .kinds.base import extra_commands_hook, primary_metric
    from .presets import explicit_command
    from .runs import create_run_dir, new_run_id

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
        "model": _model_revision(resolved.params),
        "env": environment(),
        **(fields or {}),
    }
    results.mkdir(parents=True, exist_ok=True)
    return create_run_dir(results, run_id, json.dumps(config, indent=2, ensure_ascii=False) + "\n")


def _launcher_options(args: argparse.Namespace, preset):
    from .launchers import parse_options

    source = str(preset.path) if preset is not None else "--launcher"
    return parse_options(
        getattr(preset, "launcher", None), args.launcher, args.launch, source=source
    )


def _grid_axes(args: argparse.Namespace, preset):
    from .grid import merge_axes, parse_grid_flag, table_axes

    from_preset = table_axes(preset.grid, str(preset.path)) if preset and preset.grid else []
    return merge_axes(from_preset, [parse_grid_flag(g) for g in args.grid])


def _dry_run_report(resolved):
    from .kinds import kind_experiment

    return kind_experiment(resolved.kind).dry_run(resolved.model)


def _md5_as_recorded(run: Run, resolved) -> str:
    """md5 of the resolved parameters in the recorded run's terms: parameters the kind
    added after the run was made (filled in by `reproduce`) are not part of its md5."""
    from .kinds import kind_config
    from .kinds.spec import added_params
    from .presets import params_md5

    added = added_params(kind_config(resolved.kind))
    recorded = run.config.get("params", {})
    absent = {k for k in added if k not in recorded}
    return params_md5({k: v for k, v in resolved.params.items() if k not in absent})


def cmd_run(args: argparse.Namespace) -> int:
    preset, resolved, title = _resolve_args(args)
    options = _launcher_options(args, preset)
    axes = _grid_axes(args, preset)
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
            from .display import fmt_bytes, fmt_duration

            for line in report.lines:
                _print(line)
            _print(
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
            _results(args), preset, resolved, title, {"launcher": options.model_dump(mode="json")}
        )
    if options.name != "local" or (options.processes > 1 and not _inside_torchrun()):
        return _launch(args, [run], options)
    if args.detach:
        from .launch import launch_run_detached

        pid = launch_run_detached(run.path)
        print(run.id)
        if not args.quiet:
            print(
                f"started in the background (pid {pid}); follow with `labdeck` or `labdeck show {run.short_id}`",
                file=sys.stderr,
            )
        return 0
    if not args.quiet:
        _print(f"[bold]{run.id}[/]  {run.path}")
    return _execute(run, args.quiet)


def _inside_torchrun() -> bool:
    from .distributed import is_distributed

    return is_distributed()


def _launch(args: argparse.Namespace, runs: list[Run], options) -> int:
    """Hand runs to their launcher; in the foreground (local, no --detach) wait for them."""
    from .launchers import submit

    foreground = options.name == "local" and not args.detach
    if not args.quiet:
        for r in runs:
            print(r.id, file=sys.stderr if foreground else sys.stdout)
    message = submit(runs, options, _results(args), foreground)
    if not args.quiet:
        _print(message)
    if not foreground:
        return 0
    statuses = [r.status() for r in runs]
    if len(runs) == 1:
        return _finish(runs[0], statuses[0], args.quiet)
    return 0 if all(s == "completed" for s in statuses) else 1


def _run_grid(args, preset, resolved, title, options, axes) -> int:
    """Expand, validate every member, then create them all (queued) and launch them."""
    from .grid import expand, new_group_id
    from .groups import list_groups

    if args.into:
        raise UserError("--grid cannot be combined with a reproduction")
    members = expand(resolved.kind, getattr(preset, "params", {}) or {}, args.set, axes)
    if args.dry_run:
        return _grid_dry_run(args, members, axes)
    results = _results(args)
    gid = new_group_id(set(list_groups(results)))
    axes_json = {a.key: a.values for a in axes}
    runs = []
    for m in members:
        group = {
            "id": gid,
            "title": title,
            "axes": axes_json,
            "coords": m.coords,
            "index": m.index,
            "size": len(members),
        }
        extra = {"group": group, "launcher": options.model_dump(mode="json")}
        runs.append(_new_run(results, preset, m.resolved, m.title(title), extra))
    if not args.quiet:
        _print(f"[bold]group {gid}[/]: {len(runs)} runs of {resolved.kind} ({options.name})")
    if args.detach or options.name != "local":
        code = _launch(args, runs, options)
        print(gid)
        return code
    return _launch(args, runs, options)


def _grid_dry_run(args, members, axes) -> int:
    from .display import fmt_bytes, fmt_duration, table

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
    _print(
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
    _print(
        f"total: {len(members)} runs   units: {total_units}   memory (largest run): "
        f"{fmt_bytes(peak_mem) if peak_mem is not None else 'not estimated'}   "
        f"time (one after another): {time_text}"
    )
    return 0


def _targets(args: argparse.Namespace, attr: str = "run") -> list[Run]:
    from .groups import resolve_targets

    return resolve_targets(_results(args), getattr(args, attr))


def cmd_queue(args: argparse.Namespace) -> int:
    """The detached local queue (started by `run --grid`/`--detach`): runs members in order."""
    from .launchers import options_of
    from .launchers.local import drive

    runs = [Run(Path(p)) for p in args.runs]
    drive(runs, options_of(runs[0]), _results(args))
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    from .launchers import options_of

    runs = _targets(args)
    todo = []
    for run in runs:
        status = run.status()
        if args.only_queued and status != "queued":
            return 0  # the queue's worker: stopped or started elsewhere while it waited
        if status == "completed":
            if not args.quiet:
                _print(f"{run.id} is already completed; nothing to do")
            continue
        if status not in (*RESUMABLE, "running"):  # running: the run lock gives the refusal
            raise UserError(
                f"{run.id}: status {status}; only {', '.join(RESUMABLE)} runs can be resumed"
            )
        todo.append(run)
    if not todo:
        return 0
    options = options_of(todo[0])
    if (
        len(runs) > 1
        or options.name != "local"
        or (options.processes > 1 and not _inside_torchrun())
    ):
        for r in todo:
            r.write_state(status="queued", pid=None)
        return _launch(args, todo, options)
    run = todo[0]
    if args.detach:
        from .launch import launch_run_detached

        pid = launch_run_detached(run.path)
        print(f"{run.id} resumed in the background (pid {pid})")
        return 0
    return _execute(run, args.quiet)


def cmd_stop(args: argparse.Namespace) -> int:
    runs = _targets(args)
    for run in runs:
        _stop_one(run)
    deadline = time.time() + args.wait
    while time.time() < deadline:
        if all(r.status() not in ("running", "queued") for r in runs):
            for r in runs:
                _print(f"{r.id}: {r.status()}")
            return 0
        time.sleep(0.2)
    return 0


def _stop_one(run: Run) -> None:
    import os
    import signal

    from .launchers import stop as launcher_stop
    from .runner import request_stop_file
    from .runs import pid_alive, this_host

    state = run.state()
    status = run.status()
    if status not in ("running", "queued"):
        _print(f"{run.id} is {status}; nothing to stop")
        return
    request_stop_file(run)  # reaches a runner on another host through the shared filesystem
    message = launcher_stop(run)
    if message:
        _print(message)
        return
    pid = state.get("pid")
    if state.get("host") == this_host() and pid_alive(pid, state.get("pid_started")):
        os.kill(pid, signal.SIGTERM)
    _print(f"stop requested for {run.id}; it finishes the unit in hand, then stops")


def _status_cell(status: str, st: dict[str, Any]) -> str:
    """The status, plus the scheduler's view for a Slurm run (`queued slurm:123_4 PENDING`)."""
    slurm = st.get("slurm") or {}
    if slurm.get("job_id") and status in ("queued", "running", "crashed"):
        return f"{status} slurm:{slurm['job_id']} {slurm.get('state', '?')}"
    return status


def _group_row(grp) -> list[str]:
    from .display import fmt_value

    counts = grp.statuses()
    done, total = grp.progress()
    best = grp.best()
    return [
        grp.id,
        grp.kind,
        f"{grp.title} [{len(grp.members)}: "
        + " × ".join(f"{k}({len(v)})" for k, v in grp.axes.items())
        + "]",
        " ".join(f"{n} {s}" for s, n in sorted(counts.items())),
        f"{done}/{total}" if total else "-",
        "-",
        "-",
        f"best {best[1]}={fmt_value(best[2])} ({best[0].short_id})" if best else "-",
    ]


def _ls_entry(run: Run, now: float) -> dict[str, Any] | None:
    """One run as `ls` reports it (full values; the table shortens them on a terminal)."""
    from .display import active_seconds, progress_text
    from .notes import read_notes
    from .runs import effective_status

    try:
        cfg = run.config
    except UserError as exc:
        return {"id": run.id, "kind": None, "title": None, "status": "corrupt", "error": str(exc)}
    st = run.state()
    status = effective_status(st)
    notes = read_notes(run)
    return {
        "id": run.id,
        "short_id": run.short_id,
        "kind": cfg.get("kind"),
        "title": cfg.get("title"),
        "status": status,
        "progress": progress_text(st),
        "started": st.get("started"),
        "seconds": active_seconds(st, status, now),
        "key_metric": st.get("key_metric") or None,
        "reproduction_of": st.get("reproduction_of"),
        "group": (cfg.get("group") or {}).get("id"),
        "slurm": st.get("slurm"),
        "tags": notes.tags,
        "note": notes.note,
    }


def _entry_row(e: dict[str, Any], full: bool, indent: str = "") -> list[str]:
    """One `ls` table row; a terminal gets short ids and dates, a pipe whole values."""
    from .display import fmt_duration, fmt_time, fmt_value

    if e["status"] == "corrupt":
        return [indent + e["id"], "?", "?", "corrupt", e["error"], "-", "-", "-", ""]
    started = e["started"]
    key = e["key_metric"] or {}
    return [
        indent + (e["id"] if full else e["short_id"] + ("·r" if e["reproduction_of"] else "")),
        e["kind"] or "?",
        e["title"] or "",
        _status_cell(e["status"], {"slurm": e.get("slurm")}),
        e["progress"],
        fmt_time(started, full=True)
        if full
        else time.strftime("%d %H:%M", time.localtime(started))
        if started
        else "-",
        fmt_duration(e["seconds"]),
        f"{key.get('name')}={fmt_value(key.get('value'))}" if key else "-",
        " ".join(e["tags"]),
    ]


def cmd_ls(args: argparse.Namespace) -> int:
    from .display import piped, table
    from .groups import list_groups
    from .launchers import refresh
    from .runs import is_repro_id, list_runs

    now = time.time()
    runs = list_runs(_results(args))
    refresh(runs)
    groups = list_groups(_results(args), [r for r in runs if not is_repro_id(r.id)])
    entries = []
    for run in runs:
        e = _ls_entry(run, now)
        if e is None:
            continue
        if args.status and e["status"] != args.status:
            continue
        if args.kind and e["kind"] != args.kind:
            continue
        if args.tag and args.tag not in (e.get("tags") or []):
            continue
        entries.append(e)
    if args.json:
        print(json.dumps(entries, indent=2, ensure_ascii=False))
        return 0
    if not entries:
        _print(f"no runs in {_results(args)}/ — start one with `labdeck run presets/smoke.toml`")
        return 0
    full = args.long or piped()  # a script gets whole ids and times it can pass back
    rows, seen = [], set()
    for e in entries:
        g = e.get("group") if not is_repro_id(e["id"]) else None
        if g and g in groups:
            if g in seen:
                continue
            seen.add(g)
            rows.append([*_group_row(groups[g]), ""])
            if not args.fold:
                rows += [_entry_row(m, full, "  ") for m in entries if m.get("group") == g]
            continue
        rows.append(_entry_row(e, full))
    _print(
        table(
            None,
            ["id", "kind", "title", "status", "done", "started", "time", "metric", "tags"],
            rows,
        ),
        markup=False,
    )
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from .display import fmt_time, table
    from .events import EventReader
    from .launchers import refresh

    run = _run_of(args)
    refresh([run])  # the scheduler's latest word on a cluster run
    cfg, st = run.config, run.state()
    events = EventReader.from_tail(run.events_path, 64 * 1024).read_new()
    tail = [
        e
        for e in events
        if e.get("type") in ("status", "phase", "phase_end", "batch", "log", "error", "checkpoint")
    ][-args.tail :]
    if args.json:
        from .display import active_seconds
        from .notes import read_notes

        status = run.status()
        print(
            json.dumps(
                {
                    "id": run.id,
                    "path": str(run.path),
                    "status": status,
                    "seconds": active_seconds(st, status),
                    "config": cfg,
                    "state": st,
                    "final_metrics": run.summary().get("final_metrics"),
                    "notes": read_notes(run).as_dict(),
                    "recent_events": tail,
                },
                indent=2,
                ensure_ascii=False,
                default=str,
            )
        )
        return 0
    from .display import progress_text

    _print(
        f"[bold]{run.id}[/]  kind={cfg.get('kind')}  title={cfg.get('title')}  status={run.status()}"
        f"  progress={progress_text(st)}"
    )
    _print(
        f"started {fmt_time(st.get('started'))}  ended {fmt_time(st.get('ended'))}  attempts {st.get('attempts', 0)}  records {st.get('records', 0)}"
    )
    if st.get("last_error"):
        _print(f"[red]last error:[/] {st['last_error']}")
    group, slurm = cfg.get("group") or {}, st.get("slurm") or {}
    if group:
        point = " ".join(f"{k}={json.dumps(v)}" for k, v in group.get("coords", {}).items())
        _print(
            f"group {group.get('id')} (member {group.get('index', 0) + 1}/{group.get('size')}): {point}"
        )
    if slurm.get("job_id"):
        _print(
            f"slurm job {slurm['job_id']}: {slurm.get('state', '?')} on {slurm.get('node', '-')}"
        )
    if cfg.get("overrides"):
        _print(
            table(
                "overrides (vs kind defaults)",
                ["parameter", "value"],
                [[k, json.dumps(v)] for k, v in cfg["overrides"].items()],
            )
        )
    final = run.summary().get("final_metrics")
    if final:
        _print(table("final metrics", ["metric", "value"], [[k, v] for k, v in final.items()]))
    from .notes import read_notes

    notes = read_notes(run)
    if notes.tags or notes.note:
        _print(f"tags: {' '.join(notes.tags) or '-'}  note: {notes.note or '-'}", markup=False)
    if tail:
        _print(
            table(
                "recent events",
                ["time", "type", "detail"],
                [
                    [
                        fmt_time(e.get("t")),
                        e["type"],
                        json.dumps({k: v for k, v in e.items() if k not in ("t", "seq", "type")}),
                    ]
                    for e in tail
                ],
            )
        )
    _print(f"reproduce: labdeck reproduce {run.short_id}")
    return 0


def cmd_params(args: argparse.Namespace) -> int:
    from .display import table
    from .kinds import kind_config
    from .presets import schema_rows

    rows = schema_rows(args.kind)
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "parameter": r.name,
                        "type": r.type,
                        "default": r.default,
                        "bounds": r.bounds,
                        "description": r.description,
                    }
                    for r in rows
                ],
                indent=2,
                ensure_ascii=False,
                default=str,
            )
        )
        return 0
    if args.format == "csv":
        import csv

        w = csv.writer(sys.stdout)
        w.writerow(["parameter", "type", "default", "bounds", "description"])
        for r in rows:
            w.writerow([r.name, r.type, json.dumps(r.default), r.bounds, r.description])
        return 0
    _print(f"[bold]{args.kind}[/]: {kind_config(args.kind).DESCRIPTION}")
    from .display import console, piped

    if (
        console.width < 100 and not piped()
    ):  # a narrow terminal: one block per parameter reads better than a table
        for r in rows:
            bounds = f"  [dim]{r.bounds}[/]" if r.bounds else ""
            _print(f"[bold]{r.name}[/] = {json.dumps(r.default)}  [cyan]{r.type}[/]{bounds}")
            _print(f"    {r.description}", markup=False)
        return 0
    _print(
        table(
            None,
            ["parameter", "type", "default", "bounds", "description"],
            [[r.name, r.type, json.dumps(r.default), r.bounds, r.description] for r in rows],
            wrap=("description", "default", "type"),
            max_widths={"type": 16, "default": 16, "parameter": 32},
        )
    )
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    from .display import table
    from .presets import list_presets

    infos = list_presets([Path(d) for d in args.dir] if args.dir else None)
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "path": str(p.path),
                        "kind": p.kind or None,
                        "title": p.title or None,
                        "description": p.description,
                        "error": p.error,
                    }
                    for p in infos
                ],
                indent=2,
                ensure_ascii=False,
            )
        )
        return 0
    rows = [[str(p.path), p.kind or "-", p.title or "-", p.error or p.description] for p in infos]
    _print(
        table(None, ["preset", "kind", "title", "description"], rows, wrap=("description",)),
        markup=False,
    )
    return 0


def _added_param_sets(original: Run) -> list[str]:
    """`--set` flags for parameters the kind gained after `original` was recorded: its
    explicit command predates them, and without them today's defaults would apply."""
    from .kinds import kind_config
    from .kinds.spec import added_params
    from .presets import toml_value

    recorded = original.config.get("params", {})
    added = added_params(kind_config(original.kind))
    out: list[str] = []
    for key, value in added.items():
        if key not in recorded:
            out += ["--set", f"{key}={toml_value(value)}"]
    return out


def _refuse_changed_inputs(original: Run, results: Path) -> None:
    """A reproduction must read what the original read; say exactly what differs if not."""
    from .inputs import changed_inputs
    from .kinds import kind_config
    from .kinds.spec import with_added_params

    cfg = kind_config(original.kind)
    params = cfg.Params.model_validate(with_added_params(cfg, original.config.get("params", {})))
    source = f"{original.path / 'config.json'}"
    changes = changed_inputs(original.config.get("inputs", {}), params, results, source)
    recorded_model = original.config.get("model")
    if recorded_model:
        from .model_revision import revision_changes

        now = _model_revision(original.config.get("params", {}))
        changes += revision_changes(recorded_model, now or {})
    if changes:
        raise UserError(
            f"{original.id}: inputs changed since the run, a reproduction would differ: "
            + "; ".join(changes)
        )


def cmd_reproduce(args: argparse.Namespace) -> int:
    runs = _targets(args)
    codes = [_reproduce_one(args, r) for r in runs]
    return max(codes) if codes else 0


def _reproduce_one(args: argparse.Namespace, original: Run) -> int:
    from .launch import launch_detached
    from .runs import CONFIG, LOG, create_run_dir, repro_run_id

    results = _results(args)
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
    _print(f"reproducing {original.id} as {repro.id}")
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
    from .groups import find_group

    results = _results(args)
    if find_group(results, args.run) is not None:
        return _compare_group(args)
    return _compare_pair(args)


def _compare_group(args: argparse.Namespace) -> int:
    """GROUP [OTHER_GROUP]: members paired by grid point (or each with its reproduction)."""
    from .compare import compare_runs, counterpart
    from .display import fmt_value, table
    from .groups import find_group, group_of, resolve_targets

    results = _results(args)
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
                fmt_value(worst),
                verdict,
            ]
        )
    tol = "each outcome at its kind's tolerance" if args.tol is None else f"{args.tol:g}"
    _print(f"group {grp.id}  tolerance: {tol}")
    _print(table(None, ["run", "grid point", "other", "max diff", "status"], rows))
    return 0 if ok else 1


def _compare_pair(args: argparse.Namespace) -> int:
    from .compare import compare_runs, counterpart
    from .display import fmt_value, table

    results = _results(args)
    a = _run_of(args)
    b = resolve_run(results, args.other) if args.other else counterpart(results, a)
    cmp = compare_runs(a, b, args.tol)
    exit_code = (
        {"PASS": 0, "FAIL": 1, "pending": 3}[cmp.verdict] if cmp.metrics or cmp.pending else 1
    )
    if args.json:
        print(json.dumps(cmp.as_dict(), indent=2, ensure_ascii=False, default=str))
        return exit_code
    tol = "per metric (the kind's declared tolerances)" if args.tol is None else f"{args.tol:g}"
    _print(f"original: {a.id}\nother:    {b.id}\ntolerance: {tol}", markup=False)
    if cmp.pending:
        _print(
            f"[yellow]pending:[/] {', '.join(cmp.pending)} has not finished; "
            "compare again when it has"
        )
    style = {"PASS": "[green]PASS[/]", "FAIL": "[red]FAIL[/]", "pending": "[yellow]pending[/]"}
    rows = [
        [
            m.name,
            fmt_value(m.a),
            fmt_value(m.b),
            fmt_value(m.diff),
            f"{m.tol:g}" if m.role == "outcome" else "-",
            style.get(m.verdict)
            or (f"[dim]ratio {m.ratio:.3f}[/]" if m.ratio is not None else "[dim]info[/]"),
        ]
        for m in cmp.metrics
    ]
    _print(
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
        _print(
            "[dim]measurements (time, throughput) show other/original and never fail a comparison[/]"
        )
    if cmp.params:
        _print(
            table(
                "parameters that differ",
                ["parameter", _compare_label(a, b), _compare_label(b, a)],
                [[p.key, json.dumps(p.a), json.dumps(p.b)] for p in cmp.params],
            ),
            markup=False,
        )
    else:
        _print("parameters: identical")
    if not cmp.metrics and not cmp.pending:
        _print("[yellow]no final metrics to compare (are both runs completed?)[/]")
    return exit_code


def cmd_tag(args: argparse.Namespace) -> int:
    from .notes import edit_tags

    run = _run_of(args)
    notes = edit_tags(
        run, add=[] if args.remove else args.tags, remove=args.tags if args.remove else []
    )
    print(f"{run.id}: tags {' '.join(notes.tags) or '(none)'}")
    return 0


def cmd_note(args: argparse.Namespace) -> int:
    from .notes import read_notes, set_note

    run = _run_of(args)
    if args.text is None:
        print(read_notes(run).note)
        return 0
    text = sys.stdin.read() if args.text == "-" else args.text
    notes = set_note(run, text)
    print(f"{run.id}: note {'set' if notes.note else 'cleared'}")
    return 0


def cmd_kill(args: argparse.Namespace) -> int:
    """SIGKILL the runner: for a run that does not answer `stop`. Its records stay, and
    `labdeck resume` continues it (the run shows as crashed)."""
    import os
    import signal

    from .runs import pid_alive, this_host

    run = _run_of(args)
    state = run.state()
    status = run.status()
    pid = state.get("pid")
    if status not in ("running", "queued") or not pid:
        _print(f"{run.id} is {status}; no runner to kill")
        return 0
    if state.get("host") != this_host():
        raise UserError(
            f"{run.id}: its runner is on host {state.get('host')}; kill it there "
            f"(or `labdeck stop {run.short_id}`, which reaches it through the shared folder)"
        )
    if not pid_alive(pid, state.get("pid_started")):
        _print(
            f"{run.id}: runner pid {pid} is already gone (crashed); resume with `labdeck resume {run.short_id}`"
        )
        return 0
    os.kill(pid, signal.SIGKILL)
    deadline = time.time() + 5
    while time.time() < deadline and pid_alive(pid, state.get("pid_started")):
        time.sleep(0.05)
    _print(f"killed {run.id} (pid {pid}); resume with `labdeck resume {run.short_id}`")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .groups import find_group
    from .reports import BASE_FORMATS, export, export_group

    runs = _targets(args)
    for run in runs:
        out = Path(args.out) / run.id if args.out and len(runs) > 1 else args.out
        print(export(run, args.format, Path(out) if out else None))
    grp = find_group(_results(args), args.run)
    if grp is not None and args.format in BASE_FORMATS:  # and the whole grid as one table
        out_dir = Path(args.out) if args.out else _results(args) / ".groups" / grp.id
        print(export_group(grp, args.format, out_dir))
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from .groups import find_group
    from .reports import plot, plot_group, plot_runs

    grp = find_group(_results(args), args.run[0]) if len(args.run) == 1 else None
    if grp is not None:
        out = Path(args.out) if args.out else _results(args) / ".groups" / grp.id
        print(plot_group(grp, out, metric=args.metric, color=args.color, style=args.style))
        return 0
    runs = [resolve_run(_results(args), token) for token in args.run]
    if len(runs) == 1:
        written = plot(runs[0], Path(args.out) if args.out else None)
    else:  # overlaid, styled by the parameters that differ
        stamp = time.strftime("%Y%m%d_%H%M%S")
        out = Path(args.out) if args.out else _results(args) / "plots" / f"compare_{stamp}"
        written = plot_runs(runs, out)
    for p in written:
        print(p)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .kinds import kind_experiment
    from .kinds.base import evaluate_run_hook
    from .presets import resolve

    run = _run_of(args)
    evaluate_run = evaluate_run_hook(kind_experiment(run.kind))
    if evaluate_run is None:
        raise UserError(f"kind {run.kind!r} has no separate evaluation phase")
    resolved = resolve(
        run.kind, run.config["params"], args.set, source=str(run.path / "config.json")
    )
    out = evaluate_run(run, resolved.model)
    from .display import table

    _print(
        table(
            "evaluation",
            ["metric", "value"],
            [[k, v] for k, v in out.items() if not isinstance(v, dict | list)],
        )
    )
    return 0


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--results", metavar="DIR", help="results folder (default ./results or $LABDECK_RESULTS)"
    )
    p = argparse.ArgumentParser(
        prog="labdeck",
        description="Terminal workbench for GPU language-model experiments. With no arguments: the dashboard.",
    )
    sub = p.add_subparsers(dest="verb", metavar="VERB")

    r = sub.add_parser(
        "run", parents=[common], help="start a run from a preset (or --kind) with overrides"
    )
    r.add_argument("preset", nargs="?", help="preset TOML file")
    r.add_argument("--kind", help="run a kind from its defaults (no preset)")
    r.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a parameter (TOML value; dotted keys)",
    )
    r.add_argument("--title", help="title in the run id (default: the preset's)")
    r.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=A,B,...",
        help="run every combination of these values (a group); repeatable",
    )
    r.add_argument("--launcher", help="where runs execute: local (default) or slurm")
    r.add_argument(
        "--launch",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a launcher option, e.g. partition=gpu, concurrency=2, processes=2",
    )
    r.add_argument(
        "--detach", action="store_true", help="run in the background and print the run id"
    )
    r.add_argument(
        "--dry-run",
        action="store_true",
        help="validate and estimate units, memory and time; run nothing",
    )
    r.add_argument("--json", action="store_true", help="with --dry-run: machine-readable output")
    r.add_argument("--quiet", action="store_true", help="no progress display")
    r.add_argument(
        "--into", help=argparse.SUPPRESS
    )  # reproduce: execute into a prepared run directory
    r.set_defaults(fn=cmd_run)

    s = sub.add_parser(
        "resume", parents=[common], help="continue an interrupted, failed or crashed run or group"
    )
    s.add_argument("run", help="RUN or GROUP")
    s.add_argument("--detach", action="store_true")
    s.add_argument("--quiet", action="store_true")
    s.add_argument("--only-queued", action="store_true", help=argparse.SUPPRESS)
    s.set_defaults(fn=cmd_resume)

    s = sub.add_parser("_queue", parents=[common])  # the detached local queue
    s.add_argument("runs", nargs="+")
    s.set_defaults(fn=cmd_queue)

    s = sub.add_parser(
        "stop", parents=[common], help="ask a run (or group) to finish its unit in hand and stop"
    )
    s.add_argument("run", help="RUN or GROUP")
    s.add_argument(
        "--wait", type=float, default=0.0, metavar="SECONDS", help="wait until it has stopped"
    )
    s.set_defaults(fn=cmd_stop)

    s = sub.add_parser("ls", parents=[common], help="list runs")
    s.add_argument("--status", help="only runs with this status")
    s.add_argument("--kind", help="only runs of this kind")
    s.add_argument("--tag", help="only runs with this tag")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.add_argument("--long", action="store_true", help="full run ids and dates (always when piped)")
    s.add_argument("--fold", action="store_true", help="one row per group, members hidden")
    s.set_defaults(fn=cmd_ls)

    s = sub.add_parser(
        "show", parents=[common], help="one run: status, overrides, final metrics, recent events"
    )
    s.add_argument("run")
    s.add_argument("--tail", type=int, default=12)
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(fn=cmd_show)

    s = sub.add_parser(
        "params", help="a kind's parameters: name, type, default, bounds, description"
    )
    s.add_argument("kind")
    s.add_argument("--format", choices=["table", "csv"], default="table")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(fn=cmd_params)

    s = sub.add_parser("presets", help="list preset files")
    s.add_argument("--dir", action="append", help="look in this folder (repeatable)")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(fn=cmd_presets)

    s = sub.add_parser(
        "reproduce", parents=[common], help="rerun a run (or group) from its config.json alone"
    )
    s.add_argument("run", help="RUN or GROUP")
    s.add_argument("--detach", action="store_true")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(fn=cmd_reproduce)

    s = sub.add_parser(
        "compare",
        parents=[common],
        help="final metrics and parameters of two runs (default: RUN and its reproduction)",
    )
    s.add_argument("run")
    s.add_argument("other", nargs="?")
    s.add_argument(
        "--tol",
        type=float,
        default=None,
        help="largest |difference| that passes, for every outcome "
        "(default: each metric's tolerance declared by its kind)",
    )
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(fn=cmd_compare)

    s = sub.add_parser(
        "kill", parents=[common], help="SIGKILL a run's runner (when stop is not answered)"
    )
    s.add_argument("run")
    s.set_defaults(fn=cmd_kill)

    s = sub.add_parser("tag", parents=[common], help="add (or --remove) tags on a run")
    s.add_argument("run")
    s.add_argument("tags", nargs="+", metavar="TAG")
    s.add_argument("--remove", action="store_true", help="remove these tags instead")
    s.set_defaults(fn=cmd_tag)

    s = sub.add_parser("note", parents=[common], help="set a run's note (print it without TEXT)")
    s.add_argument("run")
    s.add_argument("text", nargs="?", metavar="TEXT", help='the note ("" clears it, - reads stdin)')
    s.set_defaults(fn=cmd_note)

    s = sub.add_parser(
        "export", parents=[common], help="records as json/csv/parquet (or a kind's own format)"
    )
    s.add_argument("run")
    s.add_argument("--format", required=True)
    s.add_argument("--out", help="file or folder (default: the run's artifacts/)")
    s.set_defaults(fn=cmd_export)

    s = sub.add_parser(
        "plot",
        parents=[common],
        help="PNG curves of a run's metrics and trajectories; several runs: overlaid; "
        "a GROUP: one metric overlaid across members",
    )
    s.add_argument("run", nargs="+", help="RUN [RUN ...] or GROUP")
    s.add_argument("--metric", help="GROUP: the metric to overlay (default: the primary)")
    s.add_argument("--color", metavar="AXIS", help="GROUP: grid axis that picks the colour")
    s.add_argument("--style", metavar="AXIS", help="GROUP: grid axis that picks the line style")
    s.add_argument("--out", help="folder (default: the run's artifacts/)")
    s.set_defaults(fn=cmd_plot)

    s = sub.add_parser(
        "eval", parents=[common], help="run a kind's evaluation phase on a finished run"
    )
    s.add_argument("run")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    s.set_defaults(fn=cmd_eval)
    return p


DEMO_PRESETS = ("degradation-demo.toml", "smoke.toml")


def _headless_demo(argv: list[str]) -> int:
    """No terminal to draw a dashboard on (CI, a pipe, nohup): run the demo preset instead."""
    from .presets import default_preset_dirs

    for name in DEMO_PRESETS:
        for d in default_preset_dirs():
            if (d / name).is_file():
                print(
                    f"no terminal for the dashboard; running the demo preset {d / name} headless",
                    file=sys.stderr,
                )
                return main(["run", str(d / name), *argv])
    print("labdeck: error: no terminal for the dashboard and no demo preset found", file=sys.stderr)
    return 2


def has_terminal() -> bool:
    """A dashboard needs a terminal for both keys (stdin) and drawing (stdout)."""
    try:
        return sys.stdin.isatty() and sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def main(argv: list[str] | None = None) -> int:
    """Every unhandled exception ends with a non-zero status (1), never 0 after a traceback."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        if not argv or (argv[0] == "--results" and len(argv) == 2):
            if not has_terminal():
                return _headless_demo(argv)
            from labdeck.tui.app import main as tui_main

            return tui_main(argv)
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "fn", None):
            parser.print_help()
            return 2
        return args.fn(args)
    except UserError as exc:
        print(f"labdeck: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `labdeck ls | head`: the reader left; not an error of ours
        import os

        # Python flushes stdout at exit; point it at /dev/null so that flush cannot fail too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception:
        import traceback

        traceback.print_exc()
        print("labdeck: internal error (traceback above); exit status 1", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
