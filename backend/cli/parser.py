"""The argument parser: one sub-parser per verb, each pointing at its function."""

from __future__ import annotations

import argparse

from ..runs import STATUSES
from .control import cmd_kill, cmd_queue, cmd_resume, cmd_stop
from .listing import cmd_ls, cmd_params, cmd_presets, cmd_show
from .outputs import cmd_eval, cmd_export, cmd_note, cmd_plot, cmd_tag
from .reproduction import cmd_compare, cmd_reproduce
from .run_verbs import LARGE_GRID, cmd_run


class _PublicVerbs(dict):
    """The sub-parser map with internal verbs (`_queue`) left out of what is listed,
    so a mistyped verb's "choose from …" names only verbs a user may type."""

    def __iter__(self):
        return (k for k in super().__iter__() if not k.startswith("_"))


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
    sub._name_parser_map = sub.choices = _PublicVerbs()

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
    r.add_argument(
        "--yes",
        action="store_true",
        help=f"start a grid of more than {LARGE_GRID} runs (asked for, so a typo cannot queue thousands)",
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
    s.add_argument("run", help="RUN or GROUP (a group's queue always starts in the background)")
    s.add_argument("--detach", action="store_true", help="through the queue, in the background")
    s.add_argument("--quiet", action="store_true")
    s.add_argument("--only-queued", action="store_true", help=argparse.SUPPRESS)
    s.add_argument(
        "--retry-job",
        action="store_true",
        help="a remote fine-tune job that ended in error: start a new one on the same file",
    )
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
    s.add_argument("--status", choices=[*STATUSES, "corrupt"], help="only runs with this status")
    s.add_argument("--kind", help="only runs of this kind")
    s.add_argument("--tag", help="only runs with this tag")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.add_argument("--long", action="store_true", help="full run ids and dates (always when piped)")
    s.add_argument("--fold", action="store_true", help="one row per group, members hidden")
    s.add_argument(
        "--columns",
        metavar="SPEC",
        help="parameter columns: auto (those that differ among the listed runs), "
        "a list (lr,seed), or edits of auto (--columns=+model,-seed)",
    )
    s.add_argument(
        "--where",
        action="append",
        metavar="COND",
        help="only runs whose parameter meets COND (lr>1e-3, method=mult_gauss); repeatable",
    )
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
    s.add_argument("run", help="RUN or GROUP (a group's queue always starts in the background)")
    s.add_argument("--detach", action="store_true", help="through the queue, in the background")
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
    s.add_argument(
        "--env",
        action="store_true",
        help="the two runs' environments side by side (packages, commit, dirty, device)",
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
