"""Request pacing, retries and the counters the dashboard shows for an API.

The seed slept `--delay` seconds after every request, one request at a time: with a
1 s server latency and delay 0.2 that is under 50 requests a minute. Here requests run
concurrently (`concurrency` at once) and their *starts* are spaced by
`max(delay, 60 / requests_per_minute)`, so the delay stays a floor on the spacing the
API sees while latency overlaps. A 429 with `Retry-After` pauses every worker, not just
the one that got it: a rate-limit storm is waited out instead of hammered.

A server limits a key, not a stage: `shared_limiter(endpoint, key)` is the one limiter of
an endpoint and key in the process (a runner process is one run), shared by every model,
stage and fine-tune call. The together client paces at the wire (an httpx request hook),
so the spacing holds from the very first request, SDK-internal requests included, however
long the client takes to build its first connection. A 401/403 closes the limiter: every
request still waiting for its turn fails at once instead of being sent with a refused key.
"""

from __future__ import annotations

import email.utils
import hashlib
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


class RateLimiter:
    """Spaces request starts by `interval` seconds and honours shared pauses."""

    def __init__(
        self,
        delay: float = 0.0,
        requests_per_minute: float = 0.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        per_minute = 60.0 / requests_per_minute if requests_per_minute > 0 else 0.0
        self.interval = max(delay, per_minute)
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self._next = 0.0
        self._paused_until = 0.0
        self._refused: BaseException | None = None

    def tighten(self, delay: float = 0.0, requests_per_minute: float = 0.0) -> None:
        """A second user of the same endpoint and key: the stricter pacing holds for both."""
        per_minute = 60.0 / requests_per_minute if requests_per_minute > 0 else 0.0
        with self._lock:
            self.interval = max(self.interval, delay, per_minute)

    def refuse(self, exc: BaseException) -> None:
        """The key was refused: every later `acquire` raises `exc` instead of waiting."""
        with self._lock:
            self._refused = exc

    def pause_until(self, when: float) -> None:
        """Hold every start until `when` (a clock time): a server said "retry after"."""
        with self._lock:
            self._paused_until = max(self._paused_until, when)

    def acquire(self) -> None:
        """Block until this request may start (raises once the key was refused)."""
        with self._lock:
            if self._refused is not None:
                raise self._refused
            now = self._clock()
            start = max(now, self._next, self._paused_until)
            self._next = start + self.interval
        wait = start - now
        if wait > 0:
            self._sleep(wait)


_SHARED: dict[tuple[str, str], RateLimiter] = {}
_SHARED_LOCK = threading.Lock()


def shared_limiter(
    endpoint: str, key: str, delay: float = 0.0, requests_per_minute: float = 0.0
) -> RateLimiter:
    """The process's one limiter for `endpoint` and `key` (held by the key's hash only)."""
    ident = (endpoint.rstrip("/"), hashlib.sha256(key.encode()).hexdigest())
    with _SHARED_LOCK:
        limiter = _SHARED.get(ident)
        if limiter is None:
            limiter = _SHARED[ident] = RateLimiter(delay, requests_per_minute)
        else:
            limiter.tighten(delay, requests_per_minute)
        return limiter


def reset_shared_limiters() -> None:
    """Forget every shared limiter (a new run in the same process starts unpaced)."""
    with _SHARED_LOCK:
        _SHARED.clear()


def parse_retry_after(headers: Mapping[str, str] | None, now: float | None = None) -> float | None:
    """Seconds to wait from `retry-after-ms`, `Retry-After` (seconds or an HTTP date)."""
    if not headers:
        return None
    lower = {k.lower(): v for k, v in headers.items()}
    try:
        return max(0.0, float(lower["retry-after-ms"]) / 1000.0)
    except (KeyError, TypeError, ValueError):
        pass
    raw = lower.get("retry-after")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    parsed = email.utils.parsedate_tz(raw)
    if parsed is None:
        return None
    return max(0.0, email.utils.mktime_tz(parsed) - (time.time() if now is None else now))


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, capped; Retry-After wins when the server sends it."""

    max_retries: int = 6
    base: float = 1.0
    cap: float = 60.0
    max_retry_after: float = 300.0

    def wait(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds before retry number `attempt` (1-based)."""
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        ceiling = min(self.cap, self.base * 2 ** (attempt - 1))
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


@dataclass
class ApiStats:
    """Thread-safe counters of one provider's traffic (shown live by the dashboard)."""

    window: float = 60.0
    requests: int = 0
    retries: int = 0
    failures: int = 0
    in_retry: int = 0
    last_status: int | None = None
    statuses: dict[int, int] = field(default_factory=dict)
    _starts: deque = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def started(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self.requests += 1
            self._starts.append(now)

    def answered(self, status: int | None) -> None:
        with self._lock:
            self.last_status = status
            if status is not None:
                self.statuses[status] = self.statuses.get(status, 0) + 1

    def retrying(self, delta: int) -> None:
        with self._lock:
            self.in_retry += delta
            if delta > 0:
                self.retries += 1

    def failed(self) -> None:
        with self._lock:
            self.failures += 1

    def rate_per_minute(self, now: float | None = None) -> float:
        """Request starts in the last `window` seconds, scaled to a minute."""
        now = time.monotonic() if now is None else now
        with self._lock:
            while self._starts and self._starts[0] < now - self.window:
                self._starts.popleft()
            if not self._starts:
                return 0.0
            span = max(now - self._starts[0], 1.0)
            return round(len(self._starts) * 60.0 / min(span, self.window), 2)

    def snapshot(self) -> dict[str, float | int | None]:
        rpm = self.rate_per_minute()
        with self._lock:
            return {
                "requests": self.requests,
                "retries": self.retries,
                "retrying": self.in_retry,
                "failures": self.failures,
                "last_status": self.last_status,
                "requests_per_min": rpm,
            }
