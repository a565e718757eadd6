"""Run directories: naming, creation, state, the one-runner lock, status and listing.

A run directory is the whole interface between a runner and everything that
watches it (the dashboard, `ls`, another machine on a shared filesystem), so all
of its bookkeeping lives here.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import random
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

from .durable import fsync_dir
from .errors import RunLocked, UserError
from .jsonio import read_json, stale_temp_files, write_atomic, write_json_atomic

CONFIG = "config.json"
STATE = "state.json"
EVENTS = "events.jsonl"
RECORDS = "records.jsonl"
LOG = "runner.log"
CHECKPOINTS = "checkpoints"
ARTIFACTS = "artifacts"
SUMMARY = "summary.json"  # inside artifacts/: final metrics, written at completion
LOCK = ".lock"  # flock guard (local filesystems)
# Space a runner holds while it runs so that, when the disk fills, freeing it lets the
# final state.json (status failed, the reason) still be written.
STATE_RESERVE = ".state.reserve"
STATE_RESERVE_BYTES = 256 << 10
RUNNER_LOCK = ".runner.lock"  # O_EXCL lock file naming its holder (holds on NFS)

STATUSES = ("queued", "running", "interrupted", "failed", "completed", "crashed")
RESUMABLE = ("interrupted", "failed", "crashed", "queued")
HEARTBEAT_SECONDS = 2.0
STALE_SECONDS = 30.0

_TITLE_BAD = re.compile(r"[^A-Za-z0-9._-]+")
_RUN_ID = re.compile(
    r"^(\d{8}_\d{6})_(?P<kind>[a-z0-9]+)_(?P<rest>.+)_(?P<id>\d{6})(?P<repro>_repro\d*)?$"
)


def default_results_dir() -> Path:
    return Path(os.environ.get("LABDECK_RESULTS", "results"))


TITLE_MAX = 48  # characters of a title in a run's folder name


def slug(title: str) -> str:
    """Titles become part of a folder name: keep them to safe characters."""
    s = _TITLE_BAD.sub("-", title.strip()).strip("-.")
    return s[:TITLE_MAX] or "run"


def new_run_id(results: Path, kind: str, title: str, now: datetime | None = None) -> str:
    stamp = (now or datetime.now()).strftime("%Y%m%d_%H%M%S")
    taken = {(short_id(p.name) or "")[:6] for p in results.iterdir()} if results.exists() else set()
    rng = random.SystemRandom()
    while True:
        six = f"{rng.randrange(10**6):06d}"
        if six not in taken:
            return f"{stamp}_{kind}_{slug(title)}_{six}"


def short_id(run_id: str) -> str | None:
    """The 6 digits, plus `r`/`rN` for a reproduction (`734429r`, `734429r2`): a
    reproduction keeps its original's digits so the two sort together, and the suffix
    keeps every run's short id its own (CLI, `ls --json`, dashboard alike)."""
    m = _RUN_ID.match(run_id)
    if not m:
        return None
    repro = m.group("repro")
    return m.group("id") + ("r" + repro.removeprefix("_repro") if repro else "")


def is_repro_id(run_id: str) -> bool:
    m = _RUN_ID.match(run_id)
    return bool(m and m.group("repro"))


def repro_run_id(results: Path, original_id: str, now: datetime | None = None) -> str:
    """`<new time>_<kind>_<title>_<original 6 digits>_repro[N]`: the seed's naming, so a
    reproduction sorts next to its original and `compare` can find it."""
    m = _RUN_ID.match(original_id)
    if not m:
        raise UserError(f"{original_id}: not a labdeck run id")
    stamp = (now or datetime.now()).strftime("%Y%m%d_%H%M%S")
    base = f"{stamp}_{m.group('kind')}_{m.group('rest')}_{m.group('id')}_repro"
    n, candidate = 1, base
    while (results / candidate).exists():
        n += 1
        candidate = f"{base}{n}"
    return candidate


# --------------------------------------------------------------------------- state


def pid_alive(pid: int | None, create_time: float | None = None) -> bool:
    """True when `pid` is a live process (and, if known, the same one: pids get reused)."""
    if not pid:
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return create_time is None or abs(proc.create_time() - create_time) < 1.0
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def effective_status(state: dict[str, Any], now: float | None = None) -> str:
    """The status to show: a `running` run whose runner is gone is `crashed`.

    On this host the pid decides at once; for a runner on another host (shared
    filesystem) only a stale heartbeat can tell.
    """
    status = state.get("status", "queued")
    if status in ("running", "queued") and _scheduler_ended(state):
        return "crashed"
    if status in ("interrupted", "failed") and _scheduler_waiting(state):
        return "queued"  # the scheduler requeued the job: it continues the run when it starts
    if status not in ("running", "queued") or not state.get("pid"):
        return status
    now = time.time() if now is None else now
    stale = now - float(state.get("heartbeat") or 0) > STALE_SECONDS
    if state.get("host") == socket.gethostname():
        if not pid_alive(state.get("pid"), state.get("pid_started")):
            return "crashed"
        return status
    return "crashed" if stale else status


# Slurm states after which no runner is left for the job (see launchers/slurm.py).
SCHEDULER_ENDED = frozenset(
    [
        "BOOT_FAIL",
        "CANCELLED",
        "COMPLETED",
        "DEADLINE",
        "FAILED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "TIMEOUT",
        "GONE",
    ]
)


def _scheduler_ended(state: dict[str, Any]) -> bool:
    """The scheduler says the job is over while state.json still says queued/running."""
    return (state.get("slurm") or {}).get("state") in SCHEDULER_ENDED


# Slurm states of a job waiting to (re)start: a requeued job passes through these.
SCHEDULER_WAITING = frozenset(["PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED"])


def _scheduler_waiting(state: dict[str, Any]) -> bool:
    return (state.get("slurm") or {}).get("state") in SCHEDULER_WAITING


def queue_gone(state: dict[str, Any]) -> bool:
    """A run waiting in a local queue whose process is gone (killed outright, or the
    machine restarted): nothing will start it until `labdeck resume` queues it again."""
    queue = state.get("queue") or {}
    if state.get("status", "queued") != "queued" or state.get("pid") or not queue.get("driver"):
        return False
    if queue.get("host", this_host()) != this_host():
        return False  # another machine's queue: its pid means nothing here
    return not pid_alive(queue["driver"], queue.get("driver_started"))


def status_label(state: dict[str, Any], status: str | None = None) -> str:
    """The status as `ls` and the dashboard show it: `queued (queue gone)` for a run
    whose local queue died, else the effective status."""
    status = status or effective_status(state)
    return f"{status} (queue gone)" if status == "queued" and queue_gone(state) else status


def settled_active_seconds(state: dict[str, Any]) -> float:
    """Time spent running over every attempt that has ended: a crashed attempt (state
    still `running`) counts up to its last heartbeat. What a new attempt starts from, and
    what a run set aside (queued again, refused) keeps, so no attempt's time is lost."""
    started = state.get("attempt_started")
    if state.get("status") == "running" and started:
        last = float(state.get("heartbeat") or started)
        return float(state.get("active_before") or 0.0) + max(0.0, last - float(started))
    return float(state.get("active_seconds") or 0.0)


@dataclass
class Run:
    """A run directory on disk, read lazily; nothing here imports a kind's code."""

    path: Path
    _config: dict[str, Any] | None = field(default=None, repr=False)
    # Set by `snapshot`: state.json as read once for one listing (None: read every time).
    _state: dict[str, Any] | None = field(default=None, repr=False, compare=False)
    _memo: bool = field(default=False, repr=False, compare=False)

    @property
    def id(self) -> str:
        return self.path.name

    def file(self, name: str) -> str:
        """The path of a file in the run directory, as text: a listing of a thousand runs
        joins names several thousand times, and a string join costs a tenth of a Path's."""
        return os.path.join(self.path, name)

    @property
    def short_id(self) -> str:
        return short_id(self.id) or self.id

    @property
    def config(self) -> dict[str, Any]:
        if self._config is None:
            try:
                self._config = read_json(self.file(CONFIG))
            except FileNotFoundError:
                raise UserError(f"{self.path}: no {CONFIG}; not a labdeck run directory") from None
            except ValueError as exc:
                raise UserError(f"{self.path / CONFIG}: corrupt JSON ({exc})") from None
        return self._config

    @property
    def kind(self) -> str:
        return self.config.get("kind", "?")

    @property
    def title(self) -> str:
        return self.config.get("title", "")

    def state(self) -> dict[str, Any]:
        if self._memo and self._state is not None:
            return dict(self._state)
        try:
            state = read_json(self.file(STATE))
        except FileNotFoundError:
            state = {"status": "queued"}
        except ValueError:
            # state.json is replaced atomically, so this only happens if edited by hand.
            state = {"status": "failed", "last_error": f"{self.path / STATE}: corrupt JSON"}
        if self._memo:
            self._state = state
            return dict(state)
        return state

    def status(self) -> str:
        return effective_status(self.state())

    def write_state(self, **changes: Any) -> dict[str, Any]:
        self._state = None  # a write always starts from what is on disk now
        state = self.state()
        state.update(changes)
        write_json_atomic(self.path / STATE, state)
        if self._memo:
            self._state = dict(state)
        return state

    def set_aside(self, status: str, **changes: Any) -> dict[str, Any]:
        """Give a run that is not running now a new `status` (queued again, failed before
        it started), keeping the active time of every earlier attempt."""
        state = self.state()
        return self.write_state(
            status=status,
            pid=None,
            active_seconds=settled_active_seconds(state),
            attempt_started=None,
            **changes,
        )

    def summary(self) -> dict[str, Any]:
        """summary.json, its final metrics under today's names (see `current_metric_names`)."""
        try:
            summary = read_json(self.path / ARTIFACTS / SUMMARY)
        except (FileNotFoundError, ValueError):
            return {}
        final = summary.get("final_metrics") if isinstance(summary, dict) else None
        if isinstance(final, dict) and final:
            summary["final_metrics"] = current_metric_names(self, final)
        return summary

    @property
    def events_path(self) -> Path:
        return self.path / EVENTS

    @property
    def records_path(self) -> Path:
        return self.path / RECORDS


def check_results_writable(results: Path) -> None:
    """Refuse, before anything is created, a results folder that cannot hold new runs
    (read-only, full, not a folder): one line with the folder and the errno, exit 2."""
    import errno
    import tempfile

    try:
        results.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".labdeck-probe-", dir=results)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        name = errno.errorcode.get(exc.errno or 0, "")
        raise UserError(
            f"results folder {results}: {exc.strerror or exc}"
            + (f" ({name})" if name else "")
            + "; no run can be created there (set --results or $LABDECK_RESULTS)"
        ) from None


def current_metric_names(run: Run, metrics: dict[str, Any]) -> dict[str, Any]:
    """Final metrics with the names a kind used before renaming them mapped to today's
    (the kind's RENAMED_METRICS), so a run written then compares with one written now."""
    try:
        from .kinds import kind_config
        from .kinds.base import renamed_metrics

        renames = renamed_metrics(kind_config(run.kind))
    except Exception:  # an unknown kind or a broken config.json: names as written
        return metrics
    if not renames:
        return metrics
    return {renames.get(k, k): v for k, v in metrics.items()}


def create_run_dir(results: Path, run_id: str, config_text: str) -> Run:
    """Create the directory and its write-once config.json (exclusive: never overwrites)."""
    path = results / run_id
    path.mkdir(parents=True, exist_ok=False)
    for sub in (CHECKPOINTS, ARTIFACTS):
        (path / sub).mkdir()
    with open(path / CONFIG, "x", encoding="utf-8") as fh:
        fh.write(config_text)
        fh.flush()
        os.fsync(fh.fileno())  # written once, read by every resume and reproduction
    run = Run(path)
    write_json_atomic(path / STATE, {"status": "queued", "created": time.time()})
    fsync_dir(path)  # checkpoints/, artifacts/, config.json
    fsync_dir(results)  # the run directory's own name
    return run


def reserve_state_space(run: Run) -> None:
    """Hold STATE_RESERVE_BYTES in the run directory (best effort: a disk already full
    gets no reserve, and the run will fail on its first write anyway)."""
    path = run.path / STATE_RESERVE
    try:
        with open(path, "wb") as fh:
            fh.write(b"\0" * STATE_RESERVE_BYTES)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError:
        with contextlib.suppress(OSError):
            path.unlink()


def release_state_space(run: Run) -> None:
    with contextlib.suppress(OSError):
        (run.path / STATE_RESERVE).unlink()


def remove_stale_temp_files(run: Run) -> list[str]:
    """Remove what atomic writes of this run left when their writer was killed between
    creating the temp file and renaming it (`.state.json.<pid>-….tmp`); a runner calls
    this once it holds the run's lock. Files of a writer still alive are left alone."""
    removed = []
    for folder in (run.path, run.path / ARTIFACTS):
        for tmp in stale_temp_files(folder, pid_alive):
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
                removed.append(str(tmp.relative_to(run.path)))
    return removed


# --------------------------------------------------------------------------- lock


def boot_id() -> str:
    """This machine's boot identity: a pid from before a reboot is certainly gone."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
    except OSError:
        return f"boot-{psutil.boot_time():.0f}"


@dataclass(frozen=True)
class LockHolder:
    """What a runner writes into the lock file it holds."""

    host: str
    pid: int
    pid_started: float | None
    boot_id: str
    heartbeat: float

    @classmethod
    def me(cls) -> LockHolder:
        return cls(this_host(), os.getpid(), psutil.Process().create_time(), boot_id(), time.time())

    @classmethod
    def parse(cls, data: dict[str, Any]) -> LockHolder:
        return cls(
            str(data.get("host", "?")),
            int(data.get("pid") or 0),
            data.get("pid_started"),
            str(data.get("boot_id", "")),
            float(data.get("heartbeat") or 0),
        )

    def as_json(self) -> str:
        return json.dumps(self.__dict__)

    def is_stale(self, now: float | None = None) -> bool:
        """True when this holder can no longer be running.

        On this host the process table is authoritative: another boot id means the
        machine restarted since, otherwise the pid (with its start time) must be gone.
        A holder on another host can only be judged by its heartbeat, which a live
        runner refreshes every HEARTBEAT_SECONDS over the shared filesystem.
        """
        now = time.time() if now is None else now
        if self.host == this_host():
            if self.boot_id and self.boot_id != boot_id():
                return True
            return not pid_alive(self.pid, self.pid_started)
        return now - self.heartbeat > STALE_SECONDS


def _flock_taken(fd: int) -> bool:
    """Take an exclusive flock on `fd`; True when another process holds it. A filesystem
    without flock (some NFS mounts) counts as free: the lock file is the guard there."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    return False


class RunLock:
    """One runner per run directory, on local disks and on NFS alike.

    The lock is a file created with O_EXCL (atomic on NFSv3+, unlike flock, which NFS
    may emulate per client or not at all) naming its holder: host, pid, boot id and a
    heartbeat the runner refreshes. A lock whose holder is gone (see
    `LockHolder.is_stale`) is taken over; any other is a refusal naming pid and host.
    A flock on `.lock` stays as an extra guard where the filesystem supports it.
    """

    def __init__(self, run: Run) -> None:
        self.run = run
        self._fd: int | None = None
        self._holder: LockHolder | None = None

    @property
    def path(self) -> Path:
        return self.run.path / RUNNER_LOCK

    def _refuse(self, pid: Any, host: Any, why: str = "") -> RunLocked:
        return RunLocked(
            f"{self.run.id}: already being run by pid {pid} on {host}{why}; "
            f"stop it first (labdeck stop {self.run.short_id})"
        )

    def _read_holder(self) -> LockHolder | None:
        try:
            return LockHolder.parse(json.loads(self.path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError, AttributeError):
            # Torn by a holder killed while creating it: only its age can say whether
            # the creator is still around.
            try:
                return LockHolder("?", 0, None, "", self.path.stat().st_mtime)
            except FileNotFoundError:
                return None

    def _create(self, holder: LockHolder) -> bool:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(holder.as_json())
            fh.flush()
            os.fsync(fh.fileno())
        fsync_dir(self.run.path)
        return True

    def _take_over(self, stale: LockHolder) -> None:
        """Remove a stale lock, once, even with several runners racing for it.

        Takers serialise on an O_EXCL `.breaking` file and re-read the lock inside it, so
        a lock that a faster taker already replaced with a live one is never removed.
        """
        breaking = self.path.with_name(self.path.name + ".breaking")
        try:
            fd = os.open(breaking, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            if time.time() - breaking.stat().st_mtime > STALE_SECONDS:
                breaking.unlink(missing_ok=True)  # a taker killed mid-way
            return
        try:
            os.close(fd)
            if self._read_holder() == stale:
                self.path.unlink(missing_ok=True)
        finally:
            breaking.unlink(missing_ok=True)

    def acquire(self) -> RunLock:
        fd = os.open(self.run.path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        if _flock_taken(fd):
            os.close(fd)
            holder = self._read_holder()
            if holder is not None:
                raise self._refuse(holder.pid, holder.host) from None
            st = self.run.state()
            raise self._refuse(st.get("pid", "?"), st.get("host", "?")) from None
        self._fd = fd
        me = LockHolder.me()
        try:
            for _attempt in range(3):
                if self._create(me):
                    self._holder = me
                    return self
                holder = self._read_holder()
                if holder is None:
                    continue  # released between our two calls
                if not holder.is_stale():
                    age = time.time() - holder.heartbeat
                    raise self._refuse(holder.pid, holder.host, f" (heartbeat {age:.0f} s ago)")
                self._take_over(holder)
            raise self._refuse("?", "?", " (the lock file keeps changing)")
        except BaseException:
            self._release_flock()
            raise

    def heartbeat(self) -> None:
        """Refresh the holder's heartbeat (the monitor thread calls this)."""
        if self._holder is None:
            return
        self._holder = LockHolder(**{**self._holder.__dict__, "heartbeat": time.time()})
        # a full or flaky disk must not kill the run; the next beat retries
        with contextlib.suppress(OSError):
            write_atomic(self.path, self._holder.as_json())

    def _release_flock(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def release(self) -> None:
        if self._holder is not None:
            current = self._read_holder()
            mine = (self._holder.host, self._holder.pid, self._holder.boot_id)
            if current is not None and (current.host, current.pid, current.boot_id) == mine:
                self.path.unlink(missing_ok=True)  # never remove a lock someone took over
            self._holder = None
        self._release_flock()

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


# --------------------------------------------------------------------------- listing


@contextlib.contextmanager
def snapshot(runs: list[Run]) -> Iterator[list[Run]]:
    """Within: each run reads its state.json once, however many views ask (the listing,
    its group rows, crash detection). One `ls` or one dashboard refresh is one look at
    the folder; on NFS each extra read is a round trip to the server."""
    for r in runs:
        r._memo, r._state = True, None
    try:
        yield runs
    finally:
        for r in runs:
            r._memo, r._state = False, None


def list_runs(results: Path) -> list[Run]:
    """Every run directory under `results`, oldest first (run ids start with a timestamp)."""
    if not results.is_dir():
        return []
    names = sorted(os.listdir(results))
    return [
        Run(results / name) for name in names if os.path.isfile(os.path.join(results, name, CONFIG))
    ]


def resolve_run(results: Path, token: str) -> Run:
    """RUN as the user typed it: a path, a full id, the short id (`734429`; `734429r`
    for its reproduction), or a unique prefix."""
    token = token.rstrip("/")
    as_path = Path(token)
    if (as_path / CONFIG).is_file():
        return Run(as_path)
    runs = list_runs(results)
    exact = [r for r in runs if r.id == token]
    if exact:
        return exact[0]
    by_short = [r for r in runs if short_id(r.id) == token]
    if len(by_short) == 1:
        return by_short[0]
    matches = [r for r in runs if r.id.startswith(token) or r.id.endswith("_" + token)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise UserError(f"{token}: no run with that id, 6-digit id or prefix in {results}/")
    names = ", ".join(r.id for r in matches[:5])
    raise UserError(
        f"{token}: ambiguous, matches {len(matches)} runs ({names}); give more of the id"
    )


def find_reproductions(results: Path, original: Run) -> list[Run]:
    """Runs whose state says they reproduce `original` (newest last)."""
    out = []
    for r in list_runs(results):
        if r.id != original.id and r.state().get("reproduction_of") == original.id:
            out.append(r)
    return out


def this_host() -> str:
    return socket.gethostname()
