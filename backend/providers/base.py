"""The provider interface: what every kind asks of a model it does not own.

Kinds speak to models through two small protocols so that the same experiment runs on
the local machine (transformers) or on an API (Together, any OpenAI-compatible server)
by changing one parameter. Everything here is torch-free and SDK-free.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from ..errors import UserError

Message = dict[str, Any]


@dataclass(frozen=True)
class ChatRequest:
    """One chat completion to produce.

    `logprobs`: how many top alternatives to return per generated token (0: none). With
    `temperature == 0` decoding is greedy on every provider.
    """

    messages: list[Message]
    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    logprobs: int = 0
    stop: tuple[str, ...] = ()
    model: str | None = None  # overrides the provider's default model for this request


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token, its log-probability and the top alternatives at its position."""

    token: str
    logprob: float
    top: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ChatResult:
    """One request's outcome. A failure is a result with `error` set, never an exception:
    a batch always returns one result per request, in request order."""

    text: str = ""
    model: str = ""
    tokens_in: int = 0
    tokens_out: int = 0
    seconds: float = 0.0
    attempts: int = 1
    logprobs: list[TokenLogprob] | None = None
    error: str | None = None
    status: int | None = None  # last HTTP status (None for local or connection errors)
    batch_size: int = 1

    @property
    def ok(self) -> bool:
        return self.error is None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


OnResult = Callable[[int, ChatResult], None]


class ChatProvider(Protocol):
    """Batched chat generation.

    `chat` returns one `ChatResult` per request, in order. `on_result(index, result)` is
    called in the caller's thread as each result becomes available (completion order),
    so a caller can record finished items at once and lose nothing if killed mid-batch.
    """

    name: str
    model: str

    def chat(
        self, requests: Sequence[ChatRequest], on_result: OnResult | None = None
    ) -> list[ChatResult]: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class JobSpec:
    """A fine-tuning job as the seed's `finetune.py` describes it."""

    training_file: str  # file id returned by `upload`
    model: str
    epochs: int = 3
    learning_rate: float = 1e-5
    suffix: str | None = None
    lora: bool = True  # False: full fine-tuning
    batch_size: int | str = "max"
    seed: int | None = None
    train_on_inputs: bool | str = "auto"
    lora_rank: int | None = None  # None: the API's default for the model
    lora_alpha: int | None = None  # None: twice the rank (the API's default)
    lora_dropout: float = 0.0
    lora_modules: str = "all-linear"  # or comma-separated module names
    max_seq_length: int | None = None  # None: the model's longest


@dataclass(frozen=True)
class JobInfo:
    """A job's state as the API reports it."""

    id: str
    status: str
    model: str = ""
    output_name: str | None = None  # the fine-tuned model's name, once known
    training_file: str | None = None
    suffix: str | None = None
    message: str | None = None  # the API's error message for failed jobs

    TERMINAL = ("completed", "cancelled", "error", "user_error")

    @property
    def finished(self) -> bool:
        return self.status in self.TERMINAL

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class JobEvent:
    created_at: str
    type: str
    message: str
    step: int | None = None
    total_steps: int | None = None


class FineTuneProvider(Protocol):
    """Remote fine-tuning jobs: upload data, create, watch, cancel."""

    def upload(self, path: str) -> str: ...
    def create(self, spec: JobSpec) -> JobInfo: ...
    def retrieve(self, job_id: str) -> JobInfo: ...
    def list_jobs(self) -> list[JobInfo]: ...
    def events(self, job_id: str) -> list[JobEvent]: ...
    def losses(self, job_id: str) -> list[tuple[int, float]]: ...
    def cancel(self, job_id: str) -> JobInfo: ...


class ProviderError(RuntimeError):
    """A request that finally failed; the message names the model and the status."""

    def __init__(self, message: str, status: int | None = None, attempts: int = 1) -> None:
        super().__init__(message)
        self.status = status
        self.attempts = attempts


class ProviderAuthError(UserError):
    """The API refused the credentials (401/403). Every further request would be refused
    as well, so it is not a per-item failure: the stage stops at once with this one line
    (a `UserError`: the fix is the user's key, not a retry)."""

    exit_code = 1

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
