"""One API call through the together SDK: paced, counted, retried, and its failure named.

A failed attempt is classified by what happened (`_Failure`): an HTTP status, a timeout,
a cut connection or a malformed body; the retryable ones wait with the shared backoff,
a refused key (401/403) stops every call that shares the limiter. Shared by chat and
fine-tuning jobs in together.py.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from .base import ProviderAuthError, ProviderError
from .ratelimit import RETRY_STATUSES, ApiStats, RateLimiter, RetryPolicy, parse_retry_after

T = TypeVar("T")
_STATUS_WORDS = {
    400: "bad request",
    401: "unauthorized (check TOGETHER_API_KEY)",
    403: "forbidden",
    404: "not found",
    408: "request timeout",
    422: "unprocessable",
    429: "rate limited",
    500: "server error",
    502: "bad gateway",
    503: "unavailable",
    504: "gateway timeout",
}


class MalformedResponse(Exception):
    """A 200 whose body is not what the route returns (no choices, no id)."""


AUTH_STATUSES = frozenset({401, 403})


class _Failure:
    """What one failed attempt was: status, kind, whether to retry, how long the server asked.

    Named by what happened, so a message never calls a garbled body a connection error:
    `HTTP <status> <word>`, `timed out`, `connection cut` (refused, reset, or closed
    mid-request, as a cut-off upload is) or `malformed response` (a 200 whose body does
    not parse). All but 4xx are retried with the same bounded backoff; after all but
    "refused before sending", the server may have acted, so the outcome is unknown.
    """

    def __init__(self, exc: BaseException) -> None:
        import json

        import httpx
        import pydantic
        import together

        self.status: int | None = None
        self.retry_after: float | None = None
        self.retryable, self.outcome_unknown = True, True
        cause = exc.__cause__ if isinstance(exc, together.APIConnectionError) else None
        self.detail = _first_line(cause or exc)
        if isinstance(exc, together.APIStatusError):
            self.status = exc.status_code
            self.kind = "http"
            self.retry_after = parse_retry_after(dict(exc.response.headers))
            self.retryable = exc.status_code in RETRY_STATUSES or exc.status_code >= 500
            self.outcome_unknown = exc.status_code >= 500 or exc.status_code == 408
        elif isinstance(exc, together.APITimeoutError | httpx.TimeoutException):
            self.kind = "timed out"
        elif isinstance(exc, together.APIConnectionError | httpx.TransportError):
            self.kind = "connection cut"
        elif isinstance(
            exc,
            json.JSONDecodeError
            | together.APIResponseValidationError
            | pydantic.ValidationError
            | MalformedResponse,
        ):
            self.kind = "malformed response"
        else:
            self.kind = "error"
            self.retryable, self.outcome_unknown = False, False

    @property
    def refused_credentials(self) -> bool:
        return self.status in AUTH_STATUSES

    def describe(self) -> str:
        if self.status is None:
            return f"{self.kind} ({self.detail})"
        word = _STATUS_WORDS.get(self.status, "error")
        return f"HTTP {self.status} {word}: {self.detail}"


def _refusal_in(exc: BaseException) -> ProviderAuthError | None:
    """The limiter's refusal, raised in the request hook and wrapped by the SDK."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ProviderAuthError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class ApiCaller:
    """Runs one API call with pacing, counting and retries (shared by chat and jobs).

    A 401 or 403 is final for every call that shares the caller: the first one raises
    `ProviderAuthError`, and any call still waiting for its turn raises the same error
    without sending anything, so a bad key costs one request and one message.
    """

    def __init__(
        self,
        limiter: RateLimiter,
        policy: RetryPolicy,
        stats: ApiStats,
        *,
        seed: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
        paced_by_client: bool = False,
    ) -> None:
        self.limiter, self.policy, self.stats = limiter, policy, stats
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()
        self._sleep = sleep
        self._paced_by_client = paced_by_client  # the client's request hook waits its turn

    def call(
        self,
        fn: Callable[[], T],
        what: str,
        *,
        on_unknown: Callable[[], T | None] | None = None,
    ) -> tuple[T, int, int | None]:
        """(value, attempts, last status). Raises ProviderError when it finally fails.

        `on_unknown`: consulted after a failure whose effect on the server is unknown;
        a value it returns is taken as the call's result (used to adopt a created job).
        """
        attempt = 0
        while True:
            attempt += 1
            if not self._paced_by_client:
                self.limiter.acquire()
            self.stats.started()
            try:
                value = fn()
            except Exception as exc:
                refused = _refusal_in(exc)
                if refused is not None:  # another call met the 401 first: nothing was sent
                    raise refused from None
                fail = _Failure(exc)
                self.stats.answered(fail.status)
                if fail.refused_credentials:
                    self.stats.failed()
                    refused = ProviderAuthError(
                        f"{what}: {fail.describe()}; the API refused the credentials, so "
                        "nothing more was sent",
                        fail.status,
                    )
                    self.limiter.refuse(refused)
                    raise refused from None
                if fail.outcome_unknown and on_unknown is not None:
                    adopted = on_unknown()
                    if adopted is not None:
                        return adopted, attempt, fail.status
                if not fail.retryable or attempt > self.policy.max_retries:
                    self.stats.failed()
                    tries = f" after {attempt} attempts" if attempt > 1 else ""
                    raise ProviderError(
                        f"{what}: {fail.describe()}{tries}", fail.status, attempt
                    ) from exc
                with self._rng_lock:
                    wait = self.policy.wait(attempt, fail.retry_after, self._rng)
                if fail.retry_after is not None:
                    self.limiter.pause_until(time.monotonic() + wait)
                self.stats.retrying(+1)
                try:
                    self._sleep(wait)
                finally:
                    self.stats.retrying(-1)
                continue
            self.stats.answered(200)
            return value, attempt, 200
