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


def _new_run(results: Path, preset, resolved, title: str) -> Run:
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
    }
    results.mkdir(parents=True, exist_ok=True)
    return create_run_dir(results, run_id, json.dumps(config, indent=2, ensure_ascii=False) + "\n")


def cmd_run(args: argparse.Namespace) -> int:
    from .launch import launch_run_detached

    preset, resolved, title = _resolve_args(args)
    if args.dry_run:
        from .kinds import kind_experiment

        report = kind_experiment(resolved.kind).dry_run(resolved.model)
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
        if run.config.get("md5") != resolved.md5:
            raise UserError(
                f"{run.path}/config.json: md5 {run.config.get('md5')} differs from the explicit "
                f"command's parameters ({resolved.md5}); the reproduction would not be faithful"
            )
    else:
        run = _new_run(_results(args), preset, resolved, title)
    if args.detach:
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


def cmd_resume(args: argparse.Namespace) -> int:
    from .launch import launch_run_detached

    run = _run_of(args)
    status = run.status()
    if status == "completed":
        if not args.quiet:
            _print(f"{run.id} is already completed; nothing to do")
        return 0
    if status not in (*RESUMABLE, "running"):  # running: the run lock gives the precise refusal
        raise UserError(
            f"{run.id}: status {status}; only {', '.join(RESUMABLE)} runs can be resumed"
        )
    if args.detach:
        pid = launch_run_detached(run.path)
        print(f"{run.id} resumed in the background (pid {pid})")
        return 0
    return _execute(run, args.quiet)


def cmd_stop(args: argparse.Namespace) -> int:
    import os
    import signal

    from .runner import request_stop_file
    from .runs import pid_alive, this_host

    run = _run_of(args)
    state = run.state()
    status = run.status()
    if status not in ("running", "queued"):
        _print(f"{run.id} is {status}; nothing to stop")
        return 0
    request_stop_file(run)  # reaches a runner on another host through the shared filesystem
    pid = state.get("pid")
    if state.get("host") == this_host() and pid_alive(pid, state.get("pid_started")):
        os.kill(pid, signal.SIGTERM)
    _print(f"stop requested for {run.id}; it finishes the unit in hand, then stops")
    deadline = time.time() + args.wait
    while time.time() < deadline:
        if run.status() not in ("running", "queued"):
            _print(f"{run.id}: {run.status()}")
            return 0
        time.sleep(0.2)
    return 0


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
        "tags": notes.tags,
        "note": notes.note,
    }


def cmd_ls(args: argparse.Namespace) -> int:
    from .display import fmt_duration, fmt_time, fmt_value, piped, table
    from .runs import list_runs

    now = time.time()
    entries = []
    for run in list_runs(_results(args)):
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
    rows = []
    for e in entries:
        if e["status"] == "corrupt":
            rows.append([e["id"], "?", "?", "corrupt", e["error"], "-", "-", "-", ""])
            continue
        started = e["started"]
        key = e["key_metric"] or {}
        rows.append(
            [
                e["id"] if full else e["short_id"] + ("·r" if e["reproduction_of"] else ""),
                e["kind"] or "?",
                e["title"] or "",
                e["status"],
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
        )
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

    run = _run_of(args)
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


def _refuse_changed_inputs(original: Run, results: Path) -> None:
    """A reproduction must read what the original read; say exactly what differs if not."""
    from .inputs import changed_inputs
    from .kinds import kind_config

    params = kind_config(original.kind).Params.model_validate(original.config.get("params", {}))
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
    from .launch import launch_detached
    from .runs import CONFIG, LOG, create_run_dir, repro_run_id

    results = _results(args)
    original = _run_of(args)
    text = (original.path / CONFIG).read_text(encoding="utf-8")
    command = original.config.get("commands", {}).get("run_explicit")
    if not command:
        raise UserError(f"{original.path / CONFIG}: no commands.run_explicit to reproduce from")
    _refuse_changed_inputs(original, results)
    repro = create_run_dir(results, repro_run_id(results, original.id), text)
    repro.write_state(reproduction_of=original.id)
    argv = [*shlex.split(command)[1:], "--into", str(repro.path)]
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
    from .reports import export

    dest = export(_run_of(args), args.format, Path(args.out) if args.out else None)
    print(dest)
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from .reports import plot, plot_runs

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
        "resume", parents=[common], help="continue an interrupted, failed or crashed run"
    )
    s.add_argument("run")
    s.add_argument("--detach", action="store_true")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(fn=cmd_resume)

    s = sub.add_parser(
        "stop", parents=[common], help="ask a run to finish its unit in hand and stop"
    )
    s.add_argument("run")
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

    s = sub.add_parser("reproduce", parents=[common], help="rerun a run from its config.json alone")
    s.add_argument("run")
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
        help="PNG curves of a run's metrics and trajectories; several runs: overlaid",
    )
    s.add_argument("run", nargs="+")
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
