"""Parameters of the `feedback` kind (seed 002: process, fine-tune, evaluate).

One run does any of the three stages, in order; each stage's input may also come from a
file or from another run (`run:<id>`, `run:<id>/<artifact>`). Seed options map to
parameters as follows:

    process_conversations.py  --method → method, -n → n, -o → output, --model →
                              generation_model, --delay → delay
    finetune.py               --input → training_input, --model → model, --epochs →
                              epochs, --learning-rate → learning_rate, --suffix → suffix,
                              --full → full, --no-monitor → monitor = false,
                              --max-conversations → max_conversations
    evaluate.py               --model1/-m1 → model1, --model2/-m2 → model2, --judge/-j →
                              judge, --test-size → test_size, --delay → delay,
                              -c → test_conversations, -o → output

Events beyond the common ones (declared as views below, rendered generically):
- `job`: the remote fine-tune job: id, status, event (type: message), step, model;
- `tally`: the evaluation so far: done, wins, losses, ties, n_unparsed (prompts whose
  verdict was unreadable, left out of the figures), win_rate, low, high (95 % bootstrap
  interval), position_consistency.
`progress` events carry `failed` and `retrying` besides done/total.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..spec import MEASUREMENT, Curve, Input, Metric, Table

DESCRIPTION = (
    "Improve answers from user feedback (or as fresh alternatives), fine-tune on the last "
    "assistant message (Together or local LoRA), compare two models with a both-order judge."
)
PRIMARY_METRIC = "win_rate"
# What a run recorded before these parameters existed ran with (see spec.with_added_params).
ADDED_PARAMS = {"max_unparsed": 1.0}

ARTIFACTS = {
    "model": "artifacts/finetuned_model.json",
    "adapter": "checkpoints/final/adapter",
    "processed": "artifacts/processed.json",
    "training": "artifacts/training.jsonl",
    "summary": "artifacts/eval_summary.json",
}

METRICS = {
    "win_rate": Metric(label="model 2 win rate (ties ½)", tol=1e-9, higher_is_better=True),
    "win_rate_low": Metric(label="95 % interval, low", tol=1e-9),
    "win_rate_high": Metric(label="95 % interval, high", tol=1e-9),
    "position_consistency": Metric(label="judge position consistency", tol=1e-9),
    "wins": Metric(tol=0),
    "losses": Metric(tol=0),
    "ties": Metric(tol=0),
    "n_unparsed": Metric(tol=0, label="prompts without a readable verdict"),
    "processed": Metric(tol=0, label="conversations improved"),
    "loss": Metric(tol=1e-4, label="training loss"),
    "final_loss": Metric(tol=1e-4, label="final training loss"),
    "failed": MEASUREMENT,
    "retrying": MEASUREMENT,
    "api_*": MEASUREMENT,
    "*_seconds": MEASUREMENT,
    "tokens_per_s": MEASUREMENT,
    "lr": MEASUREMENT,
    "grad_norm": MEASUREMENT,
    "micro_batch": MEASUREMENT,
}

VIEWS = [
    Curve("Items done / failed / retrying", ("items_done", "failed", "retrying"), x="t"),
    Curve(
        "API rate (requests/min, retries, last status)",
        ("api_requests_per_min", "api_retries", "api_last_status"),
        x="t",
    ),
    Curve("Training loss (local or remote job)", ("loss",), x="step"),
    Table("Remote fine-tune job", "job", ("id", "status", "event", "step", "model")),
    Curve(
        "Evaluation: model 2 win rate and 95 % interval",
        ("win_rate", "win_rate_low", "win_rate_high", "position_consistency"),
        x="step",
    ),
    Table(
        "Evaluation tally",
        "tally",
        ("done", "wins", "losses", "ties", "n_unparsed", "win_rate", "low", "high"),
    ),
]

Stage = Literal["process", "finetune", "evaluate"]
MODEL_REF = Input("any", hub_ok=True, run_artifacts=("model", "adapter"))


class Params(BaseModel):
    """Every field has a default; the defaults run offline on the embedded model."""

    model_config = ConfigDict(extra="forbid")

    stages: list[Stage] = Field(
        default_factory=lambda: ["process", "finetune", "evaluate"],
        min_length=1,
        description="Stages to run, in this order: process, finetune, evaluate.",
    )
    seed: int = Field(0, ge=0, le=2**32 - 1, description="Seed for splits, sampling, training.")

    # ---- process
    conversations: Annotated[str, Input("file")] = Field(
        "", description="Conversations with user feedback (JSON list or JSONL); empty: bundled 30."
    )
    method: Literal["feedback", "alternative"] = Field(
        "feedback",
        description="feedback: improve from the user's feedback; alternative: without it.",
    )
    n: int = Field(0, ge=0, description="Conversations to process (0: all not held out).")
    provider: Literal["local", "together"] = Field(
        "local",
        description="Where process and evaluate generate: local transformers or Together/API.",
    )
    generation_model: str = Field(
        "smollm2-135m", min_length=1, description="Model that writes the improved answers."
    )
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="Sampling temperature (0: greedy).")
    max_tokens: int = Field(256, ge=1, le=8192, description="Most new tokens per improved answer.")

    # ---- API pacing (together provider / backend)
    base_url: str = Field(
        "",
        description="API root for the together provider ('' = Together; any OpenAI-compatible server).",
    )
    concurrency: int = Field(8, ge=1, le=256, description="API requests in flight at once.")
    requests_per_minute: float = Field(
        0.0, ge=0.0, description="Cap on API request starts per minute (0: only delay applies)."
    )
    delay: float = Field(
        0.1,
        ge=0.0,
        le=60.0,
        description="Seconds between API request starts at least (seed --delay).",
    )
    max_retries: int = Field(6, ge=0, le=50, description="Retries of a failed API request.")
    backoff: float = Field(
        1.0, gt=0.0, le=60.0, description="First retry wait (s); doubles, jittered."
    )
    request_timeout: float = Field(
        120.0, gt=0.0, description="Seconds before an API request times out."
    )

    # ---- local models
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Weight dtype of local models."
    )
    device_map: Literal["none", "auto", "cpu", "cuda"] = Field(
        "auto", description="Placement of local models (auto: GPUs if any)."
    )
    start_batch_size: int = Field(4, ge=1, le=1024, description="First local generation batch.")
    max_batch_size: int = Field(16, ge=1, le=1024, description="Largest local generation batch.")

    # ---- finetune
    backend: Literal["local", "together"] = Field(
        "local", description="Fine-tune with local LoRA (backend/training.py) or a Together job."
    )
    training_input: Annotated[str, Input("file", run_artifacts=("processed",))] = Field(
        "", description="Processed conversations to train on (seed --input); empty: this run's."
    )
    model: Annotated[str, MODEL_REF] = Field(
        "smollm2-135m", min_length=1, description="Base model to fine-tune (seed --model)."
    )
    epochs: int = Field(3, ge=1, le=100, description="Training epochs.")
    learning_rate: float = Field(1e-5, gt=0.0, le=1.0, description="Peak learning rate.")
    suffix: str = Field("", max_length=40, description="Suffix of the fine-tuned model's name.")
    full: bool = Field(False, description="Full fine-tuning instead of LoRA (Together only).")
    monitor: bool = Field(
        True, description="Follow the remote job to its end (false: seed --no-monitor)."
    )
    max_conversations: int = Field(0, ge=0, description="Training examples at most (0: all).")
    poll_seconds: float = Field(15.0, gt=0.0, le=3600.0, description="Seconds between job polls.")
    lora_rank: int = Field(8, ge=1, le=1024, description="LoRA rank (local and Together).")
    lora_alpha: float = Field(
        16.0, gt=0.0, description="LoRA alpha (local and Together; Together takes whole numbers)."
    )
    lora_dropout: float = Field(
        0.0, ge=0.0, lt=1.0, description="Dropout on the LoRA input (local and Together)."
    )
    lora_modules: str = Field(
        "",
        description="Modules that get adapters, comma-separated, or all-linear; empty: the "
        "backend's default (local: attention and MLP projections; Together: all-linear).",
    )
    batch_size: int = Field(
        8, ge=1, le=4096, description="Examples per optimizer step (local and Together)."
    )
    micro_batch_size: int = Field(
        4, ge=1, le=4096, description="Examples per forward pass at start (local only)."
    )
    max_seq_length: int = Field(
        1024, ge=32, le=131072, description="Tokens kept per training example (local and Together)."
    )

    # ---- evaluate
    model1: Annotated[str, MODEL_REF] = Field(
        "", description="First model: hub/API name, folder, adapter or run:<id>; empty: `model`."
    )
    model2: Annotated[str, MODEL_REF] = Field(
        "", description="Second model, same forms; empty: this run's fine-tuned model."
    )
    judge: str = Field("smollm2-135m", min_length=1, description="Judge model (seed --judge).")
    test_conversations: Annotated[str, Input("file", run_artifacts=("processed",))] = Field(
        "", description="Test prompts from processed conversations (seed -c); empty: held out."
    )
    test_size: int = Field(
        10, ge=1, description="Test prompts (held out of processing and training)."
    )
    eval_max_tokens: int = Field(
        256, ge=1, le=8192, description="Most new tokens per model answer."
    )
    judge_max_tokens: int = Field(
        96, ge=1, le=8192, description="Most new tokens per judge verdict."
    )
    bootstrap_samples: int = Field(1000, ge=100, le=100000, description="Bootstrap resamples.")
    max_unparsed: float = Field(
        0.2,
        ge=0.0,
        le=1.0,
        description="Largest share of judged prompts without a readable verdict before the "
        "evaluate stage fails (they are left out of the win rate either way).",
    )
    output: str = Field(
        "", description="Folder that also receives the seed-shaped JSON exports (seed -o)."
    )

    @field_validator("conversations")
    @classmethod
    def _conversations_readable(cls, value: str) -> str:
        """A plain file is read and validated now, so a bad line stops the run before it starts."""
        if value and not value.startswith("run:") and os.path.isfile(os.path.expanduser(value)):
            from ...errors import UserError
            from .conversations import read_conversations

            try:
                read_conversations(os.path.expanduser(value))
            except UserError as exc:
                raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Params:
        uses_api = self.backend == "together" and "finetune" in self.stages
        uses_api |= self.provider == "together" and bool({"process", "evaluate"} & set(self.stages))
        if uses_api and not self.base_url and not os.environ.get("TOGETHER_API_KEY"):
            raise ValueError(
                "the together provider/backend needs $TOGETHER_API_KEY in the environment "
                "(or base_url pointing at an OpenAI-compatible server)"
            )
        if self.full and self.backend == "local":
            raise ValueError("full fine-tuning is offered with backend = together only")
        if "finetune" in self.stages:
            self._fine_tune_takes_these()
        if "evaluate" in self.stages and "finetune" not in self.stages and not self.model2:
            raise ValueError(
                "evaluate without finetune needs model2 (a model name, folder, adapter or run:<id>)"
            )
        waits_for_job = self.backend == "together" and not self.monitor
        if {"evaluate", "finetune"} <= set(self.stages) and not self.model2 and waits_for_job:
            raise ValueError(
                "monitor = false returns before the fine-tuned model exists; set model2 "
                "or evaluate in a later run with model2 = run:<id>"
            )
        if self.start_batch_size > self.max_batch_size:
            raise ValueError("start_batch_size exceeds max_batch_size")
        return self

    def _fine_tune_takes_these(self) -> None:
        """Refuse what the chosen fine-tuning backend cannot take, naming the key, instead
        of leaving it unsent (limits of a particular model are checked against the API's
        own limits just before the upload). A value at its default is not a request: the
        full parameter set is recorded in config.json and validated again on resume."""
        fields = type(self).model_fields
        changed = {k for k in fields if getattr(self, k) != fields[k].default}
        lora_keys = ("lora_rank", "lora_alpha", "lora_dropout", "lora_modules")
        lora_set = [k for k in lora_keys if k in changed]
        if self.full and lora_set:
            raise ValueError(
                f"{lora_set[0]}: full fine-tuning (full = true) trains every weight and takes "
                "no LoRA parameters"
            )
        if self.backend != "together":
            return
        if "micro_batch_size" in changed:
            raise ValueError(
                "micro_batch_size: a Together job takes no micro batch size (it splits "
                "batch_size itself); remove it or use backend = local"
            )
        if not self.full and self.lora_alpha != int(self.lora_alpha):
            raise ValueError(f"lora_alpha: Together takes a whole number, not {self.lora_alpha:g}")


def preflight(params: Params, where: Callable[[str], str]) -> None:
    """Names that fail only when used, checked at validation: the models loaded here (a
    judge like `[red]x[/` is no folder, alias or hub id) and the output folder."""
    from ...models import EMBEDDED
    from ..model_files import check_local_model_name, check_output_folder

    if params.provider == "local":
        aliases = tuple(EMBEDDED)
        if "evaluate" in params.stages:
            check_local_model_name(params.judge, where("judge"), aliases)
        if "process" in params.stages:
            check_local_model_name(params.generation_model, where("generation_model"), aliases)
    if params.output:
        check_output_folder(params.output, where("output"))
