"""Verbs that read: `ls`, `show`, `params`, `presets`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..runs import Run
from .common import results_of, run_of, say


def _status_cell(status: str, st: dict[str, Any]) -> str:
    """The status, plus the scheduler's view for a Slurm run (`queued slurm:123_4 PENDING`)."""
    slurm = st.get("slurm") or {}
    if slurm.get("job_id") and status in ("queued", "running", "crashed"):
        return f"{status} slurm:{slurm['job_id']} {slurm.get('state', '?')}"
    return status


def _group_row(grp) -> list[str]:
    from ..display import fmt_value

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
        f"{done}/{total} runs" if total else "-",
        "-",
        "-",
        f"best {best[1]}={fmt_value(best[2])} ({best[0].short_id})" if best else "-",
    ]


def _ls_entry(run: Run, now: float) -> dict[str, Any] | None:
    """One run as `ls` reports it (full values; the table shortens them on a terminal)."""
    from ..display import active_seconds, progress_text
    from ..notes import read_notes
    from ..runs import effective_status, status_label

    try:
        cfg = run.config
    except UserError as exc:
        return {"id": run.id, "kind": None, "title": None, "status": "corrupt", "error": str(exc)}
    st = run.state()
    status = effective_status(st)
    label = status_label(st, status)
    notes = read_notes(run)
    return {
        "id": run.id,
        "short_id": run.short_id,
        "kind": cfg.get("kind"),
        "title": cfg.get("title"),
        "status": status,
        "queue_gone": label != status,
        "progress": progress_text(st, status=status),
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
    from ..display import fmt_duration, fmt_time, fmt_value

    if e["status"] == "corrupt":
        return [indent + e["id"], "?", "?", "corrupt", e["error"], "-", "-", "-", ""]
    started = e["started"]
    key = e["key_metric"] or {}
    return [
        indent + (e["id"] if full else e["short_id"]),
        e["kind"] or "?",
        e["title"] or "",
        _status_cell(e["status"], {"slurm": e.get("slurm")})
        + (" (queue gone)" if e.get("queue_gone") else ""),
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


LS_HEAD = ("id", "kind", "title", "status", "done", "started", "time", "metric", "tags")


def _param_columns(args: argparse.Namespace, entries: list[dict[str, Any]]) -> list[str]:
    """`--columns`: the parameters that differ among the listed runs (`auto`), or the
    user's own list; each entry gets its values under `params`."""
    from ..paramcols import choose_columns, differing_params

    listed = [e["_params"] for e in entries]
    known = {name for p in listed for name in p}
    columns = choose_columns(differing_params(listed), args.columns, known)
    for e in entries:
        e["params"] = {c: e["_params"].get(c) for c in columns}
    return columns


def cmd_ls(args: argparse.Namespace) -> int:
    from ..runs import list_runs, snapshot

    runs = list_runs(results_of(args))
    with snapshot(runs):  # one read of each state.json, whatever the rows ask
        return _ls(args, runs)


def _ls(args: argparse.Namespace, runs: list[Run]) -> int:
    from ..display import piped, table
    from ..groups import list_groups
    from ..launchers import refresh
    from ..paramcols import ParamFilter, fmt_param, params_of
    from ..runs import is_repro_id

    now = time.time()
    wheres = [ParamFilter.parse(w) for w in args.where or []]
    refresh(runs)
    groups = list_groups(results_of(args), [r for r in runs if not is_repro_id(r.id)])
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
        e["_params"] = params_of(run.config) if e["status"] != "corrupt" else {}
        if not all(w(e["_params"]) for w in wheres):
            continue
        entries.append(e)
    columns = _param_columns(args, entries) if args.columns else []
    for e in entries:
        del e["_params"]
    if args.json:
        print(json.dumps(entries, indent=2, ensure_ascii=False))
        return 0
    if not entries:
        say(f"no runs in {results_of(args)}/ — start one with `labdeck run presets/smoke.toml`")
        return 0
    full = args.long or piped()  # a script gets whole ids and times it can pass back
    width = 1000 if full else 12

    def with_params(row: list[str], e: dict[str, Any] | None) -> list[str]:
        cells = [fmt_param(e["params"][c], width) if e else "" for c in columns]
        return [*row[:3], *cells, *row[3:]]

    rows, seen = [], set()
    members: dict[str, list[dict[str, Any]]] = {}
    for e in entries:
        members.setdefault(e.get("group") or "", []).append(e)
    for e in entries:
        g = e.get("group") if not is_repro_id(e["id"]) else None
        if g and g in groups:
            if g in seen:
                continue
            seen.add(g)
            rows.append(with_params([*_group_row(groups[g]), ""], None))
            if not args.fold:
                rows += [with_params(_entry_row(m, full, "  "), m) for m in members[g]]
            continue
        rows.append(with_params(_entry_row(e, full), e))
    head = [*LS_HEAD[:3], *columns, *LS_HEAD[3:]]
    if len(rows) > PLAIN_ROWS:
        print(plain_table(head, rows, None if full else _width()))
    else:
        say(table(None, head, rows), markup=False)
    orphans = [e for e in entries if e.get("queue_gone")]
    if orphans:
        targets = sorted({e.get("group") or e["short_id"] for e in orphans})
        say(
            f"{len(orphans)} queued run(s) wait for a queue that is gone; restart it with: "
            + "; ".join(f"labdeck resume {t}" for t in targets),
            markup=False,
        )
    return 0


# Past this many rows `ls` aligns its columns itself: laying out a table cell by cell
# costs seconds at a thousand runs, and a listing that long is read by a pager or a
# script anyway.
PLAIN_ROWS = 200


def _width() -> int:
    from ..display import console

    return console.width


def plain_table(columns: list[str], rows: list[list[str]], width: int | None) -> str:
    """Left-aligned columns two spaces apart; with `width`, the widest of the id and
    title columns give up characters (ending in `…`) until each line fits."""
    cells = [columns, *([str(c) for c in r] for r in rows)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    if width:
        shrinkable = [columns.index(c) for c in ("title", "id")]
        while sum(widths) + 2 * (len(widths) - 1) > width:
            i = max(shrinkable, key=lambda k: widths[k])
            if widths[i] <= 8:
                break
            widths[i] -= 1

    def cell(text: str, w: int) -> str:
        return (text if len(text) <= w else text[: w - 1] + "…").ljust(w)

    return "\n".join(
        "  ".join(cell(r[i], widths[i]) for i in range(len(columns))).rstrip() for r in cells
    )


def cmd_show(args: argparse.Namespace) -> int:
    from ..display import fmt_time, table
    from ..events import EventReader
    from ..launchers import refresh

    run = run_of(args)
    refresh([run])  # the scheduler's latest word on a cluster run
    cfg, st = run.config, run.state()
    events = EventReader.from_tail(run.events_path, 64 * 1024).read_new()
    tail = [
        e
        for e in events
        if e.get("type") in ("status", "phase", "phase_end", "batch", "log", "error", "checkpoint")
    ][-args.tail :]
    if args.json:
        from ..display import active_seconds
        from ..notes import read_notes

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
    from ..display import labelled, piped, progress_text
    from ..runs import status_label

    # Titles, errors and parameter values are data: printed as Text, never as markup.
    say(
        labelled(
            run.id,
            f" kind={cfg.get('kind')}  title={cfg.get('title')}  status={status_label(st)}"
            f"  progress={progress_text(st, status=run.status())}",
            "bold",
        )
    )
    say(
        f"started {fmt_time(st.get('started'))}  ended {fmt_time(st.get('ended'))}  attempts {st.get('attempts', 0)}  records {st.get('records', 0)}",
        markup=False,
    )
    if st.get("last_error"):
        say(labelled("last error:", st["last_error"]))
    group, slurm = cfg.get("group") or {}, st.get("slurm") or {}
    if group:
        point = " ".join(f"{k}={json.dumps(v)}" for k, v in group.get("coords", {}).items())
        say(
            f"group {group.get('id')} (member {group.get('index', 0) + 1}/{group.get('size')}): {point}",
            markup=False,
        )
    if slurm.get("job_id"):
        say(
            f"slurm job {slurm['job_id']}: {slurm.get('state', '?')} on {slurm.get('node', '-')}",
            markup=False,
        )
        logs = [str(slurm[k]) for k in ("stdout", "stderr") if slurm.get(k)]
        if logs:
            say(f"job logs: {'  '.join(logs)}", markup=False)
    if cfg.get("overrides"):
        say(
            table(
                "overrides (vs kind defaults)",
                ["parameter", "value"],
                [[k, json.dumps(v)] for k, v in cfg["overrides"].items()],
            ),
            markup=False,
        )
    final = run.summary().get("final_metrics")
    if final:
        from ..reports import caption

        counted = caption([run])  # how the numbers were counted (em: the em_rate convention)
        title = f"final metrics ({counted})" if counted else "final metrics"
        say(table(title, ["metric", "value"], [[k, v] for k, v in final.items()]), markup=False)
    from ..notes import read_notes

    notes = read_notes(run)
    if notes.tags or notes.note:
        say(f"tags: {' '.join(notes.tags) or '-'}  note: {notes.note or '-'}", markup=False)
    if tail:
        say(
            table(
                "recent events",
                ["time", "type", "detail"],
                [[fmt_time(e.get("t")), e["type"], event_detail(e, not piped())] for e in tail],
                wrap=("detail",),  # the detail folds; the time and type stay whole
            ),
            markup=False,
        )
    say(f"reproduce: labdeck reproduce {run.short_id}")
    return 0


# An event's detail on a terminal: enough to recognise a checkpoint's metrics (a pipe,
# like `show --json`, gets all of it); a log line or an error is a message to read, and
# is kept whole.
DETAIL_CHARS = 160


def event_detail(event: dict, cut: bool) -> str:
    text = json.dumps({k: v for k, v in event.items() if k not in ("t", "seq", "type")})
    if not cut or event.get("type") in ("log", "error") or len(text) <= DETAIL_CHARS:
        return text
    return text[: DETAIL_CHARS - 1] + "…"


def cmd_params(args: argparse.Namespace) -> int:
    from ..display import table
    from ..kinds import kind_config
    from ..presets import schema_rows

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
    say(f"[bold]{args.kind}[/]: {kind_config(args.kind).DESCRIPTION}")
    from rich.text import Text

    from ..display import console, piped
    from ..param_words import human_bounds, human_type

    words = [(human_type(r.type), human_bounds(r.bounds, r.type) if r.bounds else "") for r in rows]
    if (
        console.width < 100 and not piped()
    ):  # a narrow terminal: one block per parameter reads better than a table
        for r, (kind, bounds) in zip(rows, words, strict=True):
            line = Text.assemble((r.name, "bold"), f" = {json.dumps(r.default)}  ", (kind, "cyan"))
            if bounds:
                line.append(f"  {bounds}", style="dim")
            say(line)
            say(f"    {r.description}", markup=False)
        return 0
    say(
        table(
            None,
            ["parameter", "type", "default", "bounds", "description"],
            [
                [r.name, kind, json.dumps(r.default), bounds, r.description]
                for r, (kind, bounds) in zip(rows, words, strict=True)
            ],
            wrap=("description", "default", "type"),
            max_widths={"type": 24, "default": 16, "parameter": 32},
        ),
        markup=False,
    )
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    from ..display import table
    from ..presets import list_presets

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
    say(
        table(None, ["preset", "kind", "title", "description"], rows, wrap=("description",)),
        markup=False,
    )
    return 0
