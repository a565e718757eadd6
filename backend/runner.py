"""Executes one run directory: the same code path for a first run, a resume and a reproduction.

The runner owns the run's lifecycle: it takes the lock, marks the run running,
keeps a heartbeat and a memory stream going, hands the kind a RunContext, and
turns however the kind ends (return, stop, error, batch too large) into a final
status. Whatever happens, state.json ends in a resumable state and nothing already
recorded is touched.
"""

from __future__ import annotations

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

from .errors import UserError
from .events import EventWriter
from .jsonio import write_json_atomic
from .kinds import kind_config, kind_experiment
from .kinds.base import RunContext, StateKeeper, StopRequested, primary_metric
from .kinds.spec import with_added_params
from .ledger import Ledger
from .library_output import library_output_to
from .providers.ratelimit import reset_shared_limiters
from .runs import ARTIFACTS, HEARTBEAT_SECONDS, LOG, SUMMARY, Run, RunLock, this_host
from .secrets import RedactingFormatter, redacted_streams

STOP_FILE = "stop.request"  # lets `labdeck stop` reach a runner on another host via the filesystem
MEMORY_SECONDS = 2.0


def request_stop_file(run: Run) -> Path:
    path = run.path / STOP_FILE
    path.write_text(str(time.time()), encoding="utf-8")
    return path


def _setup_logging(run: Run, console: bool) -> logging.Logger:
    log = logging.getLogger(f"labdeck.run.{run.id}")
    log.setLevel(logging.INFO)
    log.propagate = False
    for h in list(log.handlers):
        log.removeHandler(h)
    fmt = RedactingFormatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
    fh = logging.FileHandler(run.path / LOG, encoding="utf-8")
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
            self.state.flush(heartbeat=True)
            self.ledger.sync()  # bounds how long a finished unit waits for its group commit
            if self.lock is not None:
                self.lock.heartbeat()
            if self.stop_file.exists():
                self.stop.set()
            if time.time() >= next_mem:
                next_mem = time.time() + MEMORY_SECONDS
                self.sample_memory()

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
    log = _setup_logging(run, console)
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
    active_before = float(prior.get("active_seconds") or 0.0)
    if prior.get("status") == "running" and prior.get("attempt_started"):
        active_before = float(prior.get("active_before") or 0.0) + max(
            0.0, float(prior.get("heartbeat") or 0.0) - float(prior["attempt_started"])
        )
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
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
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
    if error:
        events.emit("error", message=error)
        log.error("failed: %s", error)
    events.emit("status", status=status, records=len(ledger))
    log.info("run %s %s with %d records", run.id, status, len(ledger))
    ended = time.time()
    state.update(
        force=True,
        status=status,
        ended=ended,
        last_error=error,
        records=len(ledger),
        active_seconds=active_before + (ended - now),
        ranks=rank_errors or None,
    )
    if lock is not None:  # rank 0 only: a data-parallel run notifies once
        from .notify import notify

        notify(run, status, error, log)
    ctx.close()
    events.close()
    ledger.close()
    for h in list(log.handlers):
        h.close()
        log.removeHandler(h)
    return status
