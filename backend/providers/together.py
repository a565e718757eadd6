"""Chat and fine-tuning jobs through the real `together` SDK (3.x).

- The key comes from `TOGETHER_API_KEY` only and is never written anywhere (labdeck's
  writers also mask it should an error message echo it). A custom `base_url` (any
  OpenAI-compatible server: vLLM, a local gateway) may run without a key.
- `base_url` is the server root; a trailing `/v1` is accepted and dropped, because the
  SDK adds `/v1/...` to every path.
- The SDK's own retries are off (`max_retries=0`): retries happen here, where they can
  be paced by the shared `RateLimiter`, counted in `ApiStats`, honour `Retry-After`
  for every worker at once, and end in one clear message naming model and status.
- Pacing is per endpoint and key for the whole run (`ratelimit.shared_limiter`) and is
  applied at the wire by an httpx request hook, so every HTTP request the SDK sends is
  spaced, from the first one on.
- A 401/403 stops everything that uses the key at once (`ProviderAuthError`, one line).
- Creating a fine-tuning job is the one call that costs money when repeated, so it is
  never retried blindly: after a failure whose outcome is unknown (timeout, 5xx,
  dropped connection) the job list is searched for a job on the same training file
  first, and that job is adopted instead of creating a second one.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import datetime
from typing import Any

from ..errors import UserError
from .base import (
    ChatRequest,
    ChatResult,
    JobEvent,
    JobInfo,
    JobSpec,
    OnResult,
    ProviderError,
    TokenLogprob,
)
from .ratelimit import ApiStats, RateLimiter, RetryPolicy, shared_limiter
from .together_calls import ApiCaller, MalformedResponse

KEY_ENV = "TOGETHER_API_KEY"
DEFAULT_BASE_URL = "https://api.together.ai"


def normalize_base_url(url: str | None) -> str | None:
    if not url:
        return None
    url = url.rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url


def _api_key(base: str | None) -> str:
    key = os.environ.get(KEY_ENV)
    if key:
        return key
    if base is None:
        raise UserError(
            f"provider together: ${KEY_ENV} is not set; export it (it is read from the "
            "environment only) or set base_url to an OpenAI-compatible server"
        )
    return "none"  # self-hosted OpenAI-compatible servers usually need no key


def run_limiter(
    base_url: str | None = None, delay: float = 0.0, requests_per_minute: float = 0.0
) -> RateLimiter:
    """The run's one limiter for this endpoint and the key in the environment."""
    base = normalize_base_url(base_url)
    return shared_limiter(base or DEFAULT_BASE_URL, _api_key(base), delay, requests_per_minute)


def make_client(
    base_url: str | None = None, timeout: float = 120.0, limiter: RateLimiter | None = None
) -> Any:
    """A `together.Together` client with the SDK's retries off (see module docstring);
    with `limiter`, every request to the API's host waits for its turn before it is sent
    (a presigned upload to another host is not the API's to pace)."""
    from together import DefaultHttpxClient, Together

    base = normalize_base_url(base_url)
    key = _api_key(base)
    http = None
    if limiter is not None:
        import httpx

        host = httpx.URL(base or DEFAULT_BASE_URL).host

        def pace(request: httpx.Request) -> None:
            if request.url.host == host:
                limiter.acquire()

        http = DefaultHttpxClient(event_hooks={"request": [pace]})
    return Together(api_key=key, base_url=base, timeout=timeout, max_retries=0, http_client=http)


# --------------------------------------------------------------------------- chat


def _logprobs(choice: Any) -> list[TokenLogprob] | None:
    """Together's `{tokens, token_logprobs, top_logprobs}` or OpenAI's `{content: [...]}`."""
    lp = getattr(choice, "logprobs", None)
    if lp is None:
        return None
    raw = lp.model_dump(warnings=False) if hasattr(lp, "model_dump") else dict(lp)
    if raw.get("content") is not None:  # OpenAI-compatible servers
        return [
            TokenLogprob(
                c["token"],
                float(c["logprob"]),
                {t["token"]: float(t["logprob"]) for t in c.get("top_logprobs") or []},
            )
            for c in raw["content"]
        ]
    tokens = raw.get("tokens") or []
    values = raw.get("token_logprobs") or []
    tops = raw.get("top_logprobs") or []
    if isinstance(tops, dict):  # one dict for the whole answer: attach it to the first token
        tops = [tops]
    out = []
    for i, (tok, val) in enumerate(zip(tokens, values, strict=False)):
        top = tops[i] if i < len(tops) and isinstance(tops[i], dict) else {}
        out.append(TokenLogprob(str(tok), float(val), {str(k): float(v) for k, v in top.items()}))
    return out


class TogetherChat:
    """`ChatProvider` over the Together API or any OpenAI-compatible endpoint."""

    name = "together"

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        concurrency: int = 8,
        delay: float = 0.0,
        requests_per_minute: float = 0.0,
        max_retries: int = 6,
        backoff: float = 1.0,
        timeout: float = 120.0,
        seed: int | None = None,
        client: Any = None,
        stats: ApiStats | None = None,
        limiter: RateLimiter | None = None,
        openai_logprobs: bool | None = None,
    ) -> None:
        self.model = model
        self.concurrency = max(1, concurrency)
        self.limiter = limiter or run_limiter(base_url, delay, requests_per_minute)
        self.client = client or make_client(base_url, timeout, self.limiter)
        # OpenAI-compatible servers (vLLM, ...) take `logprobs: true` + `top_logprobs: k`;
        # Together takes `logprobs: k`.
        # None: OpenAI style for any base_url that is not Together's.
        base = normalize_base_url(base_url)
        auto = base is not None and "together" not in base
        self.openai_logprobs = auto if openai_logprobs is None else openai_logprobs
        self.stats = stats or ApiStats()
        self.caller = ApiCaller(
            self.limiter,
            RetryPolicy(max_retries, backoff),
            self.stats,
            seed=seed,
            paced_by_client=client is None,
        )
        self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="labdeck-api")

    def _one(self, req: ChatRequest) -> ChatResult:
        model = req.model or self.model
        kw: dict[str, Any] = {
            "model": model,
            "messages": req.messages,
            "max_tokens": req.max_tokens,
            "temperature": req.temperature,
            "top_p": req.top_p,
        }
        if req.seed is not None:
            kw["seed"] = req.seed
        if req.logprobs and self.openai_logprobs:
            kw["logprobs"] = True
            kw["extra_body"] = {"top_logprobs": req.logprobs}
        elif req.logprobs:
            kw["logprobs"] = req.logprobs
        if req.stop:
            kw["stop"] = list(req.stop)
        t0 = time.perf_counter()

        def ask() -> tuple[Any, Any]:
            resp = self.client.chat.completions.create(**kw)
            choices = getattr(resp, "choices", None)
            if not choices:  # a 200 without an answer is a bad body, retried like one
                raise MalformedResponse("a 200 without choices")
            return resp, choices[0]

        try:
            (resp, choice), attempts, status = self.caller.call(ask, f"model {model!r}")
        except ProviderError as exc:
            return ChatResult(
                model=model,
                error=str(exc),
                status=exc.status,
                seconds=round(time.perf_counter() - t0, 4),
                attempts=exc.attempts,
            )
        message = getattr(choice, "message", None)
        text = (getattr(message, "content", None) or getattr(choice, "text", None) or "").strip()
        usage = getattr(resp, "usage", None)
        return ChatResult(
            text=text,
            model=getattr(resp, "model", None) or model,
            tokens_in=int(getattr(usage, "prompt_tokens", 0) or 0),
            tokens_out=int(getattr(usage, "completion_tokens", 0) or 0),
            seconds=round(time.perf_counter() - t0, 4),
            attempts=attempts,
            logprobs=_logprobs(choice) if req.logprobs else None,
            status=status,
        )

    def chat(
        self, requests: Sequence[ChatRequest], on_result: OnResult | None = None
    ) -> list[ChatResult]:
        futures = {self._pool.submit(self._one, r): i for i, r in enumerate(requests)}
        out: list[ChatResult | None] = [None] * len(requests)
        try:
            for fut in as_completed(futures):
                i = futures[fut]
                out[i] = fut.result()
                if on_result is not None:
                    on_result(i, out[i])
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise
        return [r for r in out if r is not None]

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.client.close()


# --------------------------------------------------------------------------- fine-tuning


def _status(value: Any) -> str:
    return str(getattr(value, "value", value) or "unknown")


def _created(job: Any) -> float | None:
    c = getattr(job, "created_at", None)
    if isinstance(c, datetime):
        return c.timestamp()
    if isinstance(c, str):
        try:
            return datetime.fromisoformat(c.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


def _job_info(job: Any, message: str | None = None) -> JobInfo:
    return JobInfo(
        id=job.id,
        status=_status(getattr(job, "status", None)),
        model=getattr(job, "model", None) or "",
        output_name=getattr(job, "output_name", None) or getattr(job, "model_output_name", None),
        training_file=getattr(job, "training_file", None),
        suffix=getattr(job, "suffix", None),
        message=message,
    )


_LOSS = re.compile(r"loss[\s:=]+([0-9]*\.?[0-9]+(?:[eE][-+]?\d+)?)", re.IGNORECASE)
_STEP = re.compile(r"step[\s:=]+(\d+)", re.IGNORECASE)


class TogetherFineTune:
    """`FineTuneProvider` over the Together fine-tuning API."""

    def __init__(
        self,
        *,
        base_url: str | None = None,
        max_retries: int = 6,
        backoff: float = 1.0,
        timeout: float = 120.0,
        delay: float = 0.0,
        requests_per_minute: float = 0.0,
        client: Any = None,
        stats: ApiStats | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.limiter = limiter or run_limiter(base_url, delay, requests_per_minute)
        self.client = client or make_client(base_url, timeout, self.limiter)
        self.stats = stats or ApiStats()
        self.caller = ApiCaller(
            self.limiter,
            RetryPolicy(max_retries, backoff),
            self.stats,
            paced_by_client=client is None,
        )

    def upload(self, path: str) -> str:
        """The file id of `path` uploaded for fine-tuning (the SDK's own checker runs first)."""
        from together.lib.types.error import FileTypeError

        try:
            resp, _, _ = self.caller.call(
                lambda: self.client.files.upload(file=path, purpose="fine-tune", check=True),
                f"upload {path}",
            )
        except ProviderError as exc:
            if isinstance(exc.__cause__, FileTypeError):
                raise UserError(f"{path}: rejected by the together file checker: {exc}") from None
            raise
        return resp.id

    def find_job(
        self, training_file: str, since: float | None = None, exclude: frozenset[str] = frozenset()
    ) -> JobInfo | None:
        """The newest job on `training_file` (created at or after `since`, unix time),
        other than those in `exclude`."""
        matches = [
            j
            for j in self.list_jobs(raw=True)
            if getattr(j, "training_file", None) == training_file
            and j.id not in exclude
            and (since is None or (_created(j) or since) >= since - 120)
        ]
        if not matches:
            return None
        newest = max(matches, key=lambda j: _created(j) or 0.0)
        return _job_info(newest)

    def limits(self, model: str) -> Any:
        """The API's limits for fine-tuning `model` (ranks, batch sizes, lengths, modules)."""
        value, _, _ = self.caller.call(
            lambda: self.client.fine_tuning.model_limits(model_name=model),
            f"fine-tuning limits of model {model!r}",
        )
        return value

    def create(
        self,
        spec: JobSpec,
        since: float | None = None,
        *,
        limits: Any = None,
        exclude: frozenset[str] = frozenset(),
    ) -> JobInfo:
        """Create the job once; after an unknown outcome adopt the job it may have created
        (never one of `exclude`: the failed jobs a retry replaces). `limits`: as returned
        by `limits(model)`, so the SDK need not ask again."""
        kw: dict[str, Any] = {
            "training_file": spec.training_file,
            "model": spec.model,
            "n_epochs": spec.epochs,
            "learning_rate": spec.learning_rate,
            "lora": spec.lora,
            "batch_size": spec.batch_size,
            "train_on_inputs": spec.train_on_inputs,
        }
        if spec.lora:
            kw.update(
                lora_r=spec.lora_rank,
                lora_alpha=spec.lora_alpha,
                lora_dropout=spec.lora_dropout,
                lora_trainable_modules=spec.lora_modules,
            )
        if spec.max_seq_length is not None:
            kw["max_seq_length"] = spec.max_seq_length
        if limits is not None:
            kw["model_limits"] = limits
        if spec.suffix:
            kw["suffix"] = spec.suffix
        if spec.seed is not None:
            kw["random_seed"] = spec.seed
        since = time.time() if since is None else since

        def adopt() -> Any:
            return self.find_job(spec.training_file, since, exclude)

        job, _, _ = self.caller.call(
            lambda: self.client.fine_tuning.create(**kw),
            f"fine-tune of model {spec.model!r}",
            on_unknown=adopt,
        )
        return job if isinstance(job, JobInfo) else _job_info(job)

    def retrieve(self, job_id: str) -> JobInfo:
        job, _, _ = self.caller.call(
            lambda: self.client.fine_tuning.retrieve(job_id), f"fine-tune job {job_id}"
        )
        message = None
        status = _status(getattr(job, "status", None))
        if status in ("error", "user_error", "cancelled"):
            errors = [
                e
                for e in self.events(job_id)
                if e.type in ("job_error", "job_stopped", "billing_limit")
            ]
            message = errors[-1].message if errors else None
        return _job_info(job, message)

    def list_jobs(self, raw: bool = False) -> list[Any]:
        resp, _, _ = self.caller.call(lambda: self.client.fine_tuning.list(), "fine-tune job list")
        data = list(getattr(resp, "data", None) or [])
        return data if raw else [_job_info(j) for j in data]

    def events(self, job_id: str) -> list[JobEvent]:
        resp, _, _ = self.caller.call(
            lambda: self.client.fine_tuning.list_events(job_id), f"events of job {job_id}"
        )
        return [
            JobEvent(
                created_at=str(getattr(e, "created_at", "")),
                type=str(getattr(e, "type", "")),
                message=str(getattr(e, "message", "")),
                step=getattr(e, "step", None),
                total_steps=getattr(e, "total_steps", None),
            )
            for e in getattr(resp, "data", None) or []
        ]

    def losses(self, job_id: str) -> list[tuple[int, float]]:
        """Training loss by step: the metrics endpoint, else numbers in event messages."""
        try:
            resp, _, _ = self.caller.call(
                lambda: self.client.fine_tuning.list_metrics(job_id), f"metrics of job {job_id}"
            )
            rows = list(getattr(resp, "metrics", None) or [])
        except ProviderError:
            rows = []
        out: dict[int, float] = {}
        for row in rows:
            step = row.get("global_step", row.get("step"))
            loss = row.get("train_loss", row.get("loss"))
            if step is not None and loss is not None:
                out[int(step)] = float(loss)
        if not out:
            for e in self.events(job_id):
                m, s = _LOSS.search(e.message), _STEP.search(e.message)
                if m and (s or e.step is not None):
                    out[int(s.group(1)) if s else int(e.step or 0)] = float(m.group(1))
        return sorted(out.items())

    def cancel(self, job_id: str) -> JobInfo:
        job, _, _ = self.caller.call(
            lambda: self.client.fine_tuning.cancel(job_id), f"cancel of job {job_id}"
        )
        return _job_info(job)

    def close(self) -> None:
        self.client.close()
