"""Parameters of the `smoke` kind: greedy answers to a handful of prompts.

It is the quickest way to see that a machine can load a model, generate, adapt its
batch size and write a resumable run, before spending hours on a real sweep.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ...devices import check_4bit, check_device
from ..fields import ModelName
from ..spec import MEASUREMENT, Curve, Metric

DESCRIPTION = (
    "Greedy answers from a model to a few prompts: checks loading, generation and batching."
)
PRIMARY_METRIC = "tokens_per_s"

# Greedy decoding on one machine reproduces answer lengths exactly; throughput is
# the machine's speed at that moment, shown with its ratio and never a FAIL.
METRICS = {
    "tokens_per_s": MEASUREMENT,
    "mean_tokens": Metric(role="outcome", tol=0.0, label="mean answer length", unit="tokens"),
}
VIEWS = [
    Curve("throughput", ("tokens_per_s",), x="step"),
    Curve("answer length", ("mean_tokens",), x="step"),
]

DEFAULT_PROMPTS = [
    "What is the capital of France?",
    "Name three primary colors.",
    "What is 12 plus 7?",
    "Write one sentence about the sea.",
    "Which planet is known as the Red Planet?",
    "Translate 'good morning' into Spanish.",
]


class Params(BaseModel):
    """Every field has a default, so `labdeck run --kind smoke` needs nothing else."""

    model_config = ConfigDict(extra="forbid")

    model: ModelName = Field(
        "smollm2-135m", min_length=1, description="Hugging Face id, local folder or embedded alias."
    )
    prompts: list[str] = Field(
        default_factory=lambda: list(DEFAULT_PROMPTS),
        min_length=1,
        description="User messages to answer; each is one work unit.",
    )
    max_new_tokens: int = Field(24, ge=1, le=2048, description="Most new tokens per answer.")
    start_batch_size: int = Field(2, ge=1, le=1024, description="Batch size of the first batch.")
    max_batch_size: int = Field(
        4, ge=1, le=1024, description="Largest batch the controller may grow to."
    )
    seed: int = Field(0, ge=0, le=2**32 - 1, description="Seed for every random number generator.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Weight dtype; auto keeps the checkpoint's."
    )
    device_map: Literal["none", "auto", "cpu", "cuda"] = Field(
        "auto", description="Placement: auto spreads over GPUs (CPU if none); none keeps the CPU."
    )
    load_4bit: bool = Field(False, description="Load weights in 4-bit NF4 (needs CUDA).")
    grow_below: float = Field(
        0.40, ge=0.0, le=1.0, description="Double the batch under this memory share."
    )
    pause_above: float = Field(
        0.90, ge=0.0, le=1.0, description="Warn and pause over this memory share."
    )
    shrink_above: float = Field(
        0.95, ge=0.0, le=1.0, description="Halve the batch over this memory share."
    )
    pause_seconds: float = Field(1.0, ge=0.0, le=60.0, description="Length of a memory pause (s).")

    @model_validator(mode="after")
    def _consistent(self) -> Params:
        if not self.grow_below <= self.pause_above <= self.shrink_above:
            raise ValueError(
                "memory thresholds must satisfy grow_below <= pause_above <= shrink_above "
                f"(got {self.grow_below}, {self.pause_above}, {self.shrink_above})"
            )
        if self.start_batch_size > self.max_batch_size:
            raise ValueError(
                f"start_batch_size ({self.start_batch_size}) exceeds max_batch_size ({self.max_batch_size})"
            )
        if any(not p.strip() for p in self.prompts):
            raise ValueError("prompts must not contain empty strings")
        return self


def preflight(params: Params, where: Callable[[str], str]) -> None:
    """What this machine must provide, checked at validation (no torch import)."""
    if params.device_map == "cuda":
        check_device("cuda", where("device_map"))
    if params.load_4bit:
        check_4bit(where("load_4bit"))
