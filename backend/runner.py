"""Executes one run directory: the same code path for a first run, a resume and a reproduction.

The runner owns the run's lifecycle: it takes the lock, marks the run running,
keeps a heartbeat and a memory stream going, hands the kind a RunContext, and
turns however the kind ends (return, stop, error, batch too large) into a final
status. Whatever happens, state.json ends in a resumable state and nothing already
recorded is touched.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from .errors import UserError, describe_os_error
from .events import EventWriter
from .jsonio import write_json_atomic
from .kinds import kind_config, kind_experiment
from .kinds.base import RunContext, StateKeeper, StopRequested, primary_metric
from .kinds.spec import with_added_params
from .ledger import Ledger
from .library_output import library_output_to
from .providers.ratelimit import reset_shared_limiters
from .runs import (
    ARTIFACTS,
    HEARTBEAT_SECONDS,
    LOG,
    SUMMARY,
    Run,
    RunLock,
    release_state_space,
    remove_stale_temp_files,
    reserve_state_space,
    settled_active_seconds,
    this_host,
)
from .secrets import RedactingFormatter, redacted_streams

STOP_FILE = "stop.request"  # lets `labdeck stop` reach a runner on another host via the filesystem
MEMORY_SECONDS = 2.0


def request_stop_file(run: Run) -> Path:
    path = run.path / STOP_FILE
    path.write_text(str(time.time()), encoding="utf-8")
    return path


class _LogFile(logging.FileHandler):
    """runner.log; a write it cannot make (a full disk) is dropped, not printed as a
    traceback on the console for every line: the run's end names the disk error."""

    def handleError(self, record: logging.LogRecord) -> None:
        return None


def _setup_logging(run: Run, console: bool) -> logging.Logger:
    log = logging.getLogger(f"labdeck.run.{run.id}")
    log.setLevel(logging.INFO)
    log.propagate = False
    for h in list(log.handlers):
        log.removeHandler(h)
    fmt = RedactingFormatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
    fh = _LogFile(run.path / LOG, encoding="utf-8")
    fh.setFormatter(fmt)
    log.addHandler(fh)
    if console:
        ch = logging.StreamHandler(sys.stderr)
        ch.setFormatter(RedactingFormatter("%(message)s"))
        ch.setLevel(logging.WARNING)
        log.addHandler(ch)
    return log


class _Monitor(threading.Thread):
    """Heartbeat, memory events and the cross-host stop file, on one quiet thread."""

    def __init__(
        self,
        run: Run,
        state: StateKeeper,
        events: EventWriter,
        stop: threading.Event,
        ledger: Ledger,
        lock: RunLock | None,
        stop_file: Path | None = None,
    ):
        super().__init__(name="labdeck-monitor", daemon=True)
        self.target, self.state, self.events, self.stop = run, state, events, stop
        self.ledger, self.lock = ledger, lock
        self.stop_file = stop_file or run.path / STOP_FILE
        self._done = threading.Event()

    def sample_memory(self) -> None:
        from . import gpu

        try:
            self.events.emit("memory", devices=[d.as_event() for d in gpu.probe_all()])
        except Exception as exc:  # a probe failure must never kill a run
            self.events.emit("log", level="warning", message=f"memory probe failed: {exc}")

    def run(self) -> None:
        next_mem = time.time() + MEMORY_SECONDS
        while not self._done.wait(HEARTBEAT_SECONDS):
            # a full disk: the kind's next write fails and ends the run with the reason
            with contextlib.suppress(OSError):
                next_mem = self._beat(next_mem)

    def _beat(self, next_mem: float) -> float:
        self.state.flush(heartbeat=True)
        self.ledger.sync()  # bounds how long a finished unit waits for its group commit
        if self.lock is not None:
            self.lock.heartbeat()
        if self.stop_file.exists():
            self.stop.set()
        if time.time() >= next_mem:
            next_mem = time.time() + MEMORY_SECONDS
            self.sample_memory()
        return next_mem

    def finish(self) -> None:
        self._done.set()
        self.join(timeout=5)


def verify_config_md5(run: Run) -> None:
    """Refuse a config.json whose params no longer hash to its recorded md5.

    config.json is written once; an edit (by hand or by a tool) would silently change
    what a resumed run computes, and its records would then mix two experiments.
    """
    from .presets import params_md5

    config = run.config
    recorded = config.get("md5")
    actual = params_md5(config.get("params", {}))
    if recorded != actual:
        raise UserError(
            f"{run.path / 'config.json'}: params were edited after creation (md5 {actual}, "
            f"recorded {recorded}); a resumed run would not be the recorded experiment; "
            "start a new run with the changed parameters instead"
        )


def verify_inputs(run: Run) -> None:
    """Refuse to continue a run whose recorded input files changed since it was created.

    A resumed run would otherwise mix records computed from two versions of its data
    under one config.json. The refusal names each file with its recorded and current
    sha256 (the plain hash of a file's bytes, as `sha256sum` prints it) and is kept in
    state.json, so a queued run refused by its worker shows why in `ls` and `show`.
    """
    from .inputs import changed_since_recorded

    changes = changed_since_recorded(run.config.get("inputs") or {})
    if not changes:
        return
    message = (
        f"{run.id}: refused: an input changed since the run was created, so resuming would "
        "mix records from two versions of it: "
        + "; ".join(changes)
        + "; restore the file or start a new run"
    )
    # A run that cannot start (queued, or crashed while `running`) is failed with the
    # reason; a stopped or failed run keeps its status and gains the reason.
    status = run.state().get("status")
    run.set_aside("failed" if status in ("queued", "running") else str(status), last_error=message)
    raise UserError(message)


def execute(
    run: Run, listener: Callable[[dict[str, Any]], None] | None = None, console: bool = False
) -> str:
    """Run (or continue) `run` to an end; returns the final status.

    Under torchrun (`[launcher] processes = N`) every rank executes the kind, but only
    rank 0 takes the lock and writes the run directory; the others work in a shadow.
    Whatever the process prints meanwhile is masked (secrets.py), however the runner was
    started (the command line, a Slurm job).
    """
    with redacted_streams():
        return _execute(run, listener, console)


def _execute(run: Run, listener: Callable[[dict[str, Any]], None] | None, console: bool) -> str:
    from . import distributed

    if distributed.is_distributed():
        distributed.init()
        if not distributed.is_main():
            return _execute_follower(run)
    lock = RunLock(run).acquire()
    try:
        return _execute_locked(run, lock, listener, console)
    finally:
        lock.release()
        distributed.shutdown()


def _execute_follower(run: Run) -> str:
    """A non-zero rank: the same run in a private shadow (see `ranks`) that reads what
    rank 0 has written and whose own writes are thrown away, except its log and, if it
    fails, its error."""
    import shutil

    from . import distributed
    from .ranks import make_shadow, record_rank_end

    me = distributed.rank()
    shadow = make_shadow(run.path, me)
    try:
        status = _execute_locked(Run(shadow), None, None, False, stop_file=run.path / STOP_FILE)
        record_rank_end(run.path, me, status, Run(shadow).state().get("last_error"))
        return status
    finally:
        distributed.shutdown()
        shutil.rmtree(shadow, ignore_errors=True)


def _execute_locked(
    run: Run,
    lock: RunLock | None,
    listener: Callable[[dict[str, Any]], None] | None,
    console: bool,
    stop_file: Path | None = None,
) -> str:
    from . import distributed
    from .ranks import with_rank_errors

    config = run.config
    verify_config_md5(run)
    if lock is not None:  # rank 0 checks for all; a follower's shadow has no inputs of its own
        verify_inputs(run)
    kind = config["kind"]
    cfg = kind_config(kind)
    try:
        params = cfg.Params.model_validate(with_added_params(cfg, config["params"]))
    except Exception as exc:
        raise UserError(
            f"{run.path / 'config.json'}: params no longer valid for kind {kind!r}: {exc}"
        ) from None
    (run.path / STOP_FILE).unlink(missing_ok=True)
    reset_shared_limiters()  # API pacing is per run: one limiter per endpoint and key
    stale = remove_stale_temp_files(run) if lock is not None else []
    reserve_state_space(run)
    log = _setup_logging(run, console)
    if stale:
        log.info("removed temp files left by a killed writer: %s", ", ".join(stale))
    events = EventWriter(run.events_path)
    if listener:
        events.add_listener(listener)
    ledger = Ledger(run.records_path)
    state = StateKeeper(run)
    prior = run.state()
    attempt = int(prior.get("attempts", 0)) + 1
    now = time.time()
    # Time already spent running in earlier attempts (a crashed attempt counts up to
    # its last heartbeat), so elapsed time never includes the time a run sat stopped.
    active_before = settled_active_seconds(prior)
    state.update(
        force=True,
        status="running",
        pid=os.getpid(),
        pid_started=psutil.Process().create_time(),
        host=this_host(),
        devices=os.environ.get("CUDA_VISIBLE_DEVICES"),  # the GPUs a queue pinned it to
        started=prior.get("started") or now,
        attempt_started=now,
        active_before=active_before,
        heartbeat=now,
        ended=None,
        attempts=attempt,
        last_error=None,
        records=len(ledger),
    )
    events.emit("status", status="running", attempt=attempt, records=len(ledger))
    log.info("run %s (%s) attempt %d, %d records already done", run.id, kind, attempt, len(ledger))

    stop = threading.Event()
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}

    def _on_signal(signum: int, _frame: Any) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        stop.set()
        log.info("stop requested (%s): finishing the unit in hand", signal.Signals(signum).name)

    in_main = threading.current_thread() is threading.main_thread()
    if in_main:
        for s in previous:
            signal.signal(s, _on_signal)
    monitor = _Monitor(run, state, events, stop, ledger, lock, stop_file)
    monitor.sample_memory()  # one reading before any work, so even a short run has one
    monitor.start()
    ctx = RunContext(run, params, events, ledger, state, log, stop, primary_metric(cfg))
    status, error = "failed", None
    # Library warnings and log lines go to runner.log for the run (library_output.py).
    routed = library_output_to(log.handlers[0], keep=set(log.handlers))
    routed.__enter__()
    try:
        final = kind_experiment(kind).run(ctx) or {}
        summary = {
            "final_metrics": final,
            "records": len(ledger),
            "finished": time.time(),
            "attempts": attempt,
        }
        write_json_atomic(run.path / ARTIFACTS / SUMMARY, summary)
        primary = primary_metric(cfg)
        if primary in final:
            state.update(key_metric={"name": primary, "value": final[primary]})
        status = "completed"
    except StopRequested:
        status = "interrupted"
    except KeyboardInterrupt:
        status, error = "interrupted", "interrupted by a second Ctrl-C"
    except UserError as exc:
        error = str(exc)
    except OSError as exc:  # a full or read-only disk: the path and the errno, by name
        where = "" if exc.filename is not None else f"{run.path}: "
        error = f"{type(exc).__name__}: {where}{describe_os_error(exc)}"
        with contextlib.suppress(OSError):
            log.error("%s\n%s", error, traceback.format_exc())
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        with contextlib.suppress(OSError):
            log.error("%s\n%s", error, traceback.format_exc())
    finally:
        routed.__exit__(None, None, None)
        monitor.finish()
        if in_main:
            for s, h in previous.items():
                signal.signal(s, h)
    rank_errors: dict[str, Any] = {}
    if error and lock is not None and distributed.is_distributed():
        error, rank_errors = with_rank_errors(run.path, error, distributed.world_size())
    # From here on the disk may be full: the final state.json comes first and, should it
    # fail, again in the space the reserve held; the rest is best effort.
    ended = time.time()
    final_state = {
        "status": status,
        "ended": ended,
        "last_error": error,
        "records": len(ledger),
        "active_seconds": active_before + (ended - now),
        "ranks": rank_errors or None,
    }
    try:
        state.update(force=True, **final_state)
    except OSError:
        release_state_space(run)
        state.update(force=True, **final_state)
    release_state_space(run)
    with contextlib.suppress(OSError):
        if error:
            events.emit("error", message=error)
            log.error("failed: %s", error)
        events.emit("status", status=status, records=len(ledger))
        log.info("run %s %s with %d records", run.id, status, len(ledger))
    if lock is not None:  # rank 0 only: a data-parallel run notifies once
        from .notify import notify

        notify(run, status, error, log)
    for close in (ctx.close, events.close, ledger.close):
        with contextlib.suppress(OSError):
            close()
    for h in list(log.handlers):
        h.close()
        log.removeHandler(h)
    return status
