"""`labdeck`: the command line. With no arguments it opens the dashboard.

One module per verb family (run_verbs, control, listing, reproduction, outputs), the
parser in parser.py, shared helpers in common.py. Errors caused by input are
`UserError`s, printed as one line with exit status 2.
"""

from __future__ import annotations

import sys

from ..errors import UserError
from .parser import build_parser

__all__ = ["build_parser", "has_terminal", "main"]

DEMO_PRESETS = ("degradation-demo.toml", "smoke.toml")


def _headless_demo(argv: list[str]) -> int:
    """No terminal to draw a dashboard on (CI, a pipe, nohup): run the demo preset instead."""
    from ..presets import default_preset_dirs

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
    """Every unhandled exception ends with a non-zero status (1), never 0 after a traceback.

    Everything the process prints passes through `redacted_streams`, so a secret that a
    library echoes (an API error quoting the key) never reaches the screen or a log file
    that the output is redirected to.
    """
    from ..secrets import redacted_streams

    with redacted_streams():
        return _main(sys.argv[1:] if argv is None else argv)


def _main(argv: list[str]) -> int:
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
    except OSError as exc:  # a read-only or full disk, a folder without permission
        from ..errors import describe_os_error

        print(f"labdeck: error: {describe_os_error(exc)}", file=sys.stderr)
        return 1
    except Exception:
        import traceback

        traceback.print_exc()
        print("labdeck: internal error (traceback above); exit status 1", file=sys.stderr)
        return 1
