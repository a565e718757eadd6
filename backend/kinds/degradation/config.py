"""Parameters of a weight-degradation sweep (seed 001), declared once.

This schema is the whole contract between a preset and the sweep: validation,
`labdeck params degradation` and the dashboard's launch form all come from it,
so every knob the seed kept in a dataclass lives here with a bound and a line
of description. No torch import: validating a preset must stay instant.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ...devices import DEVICE_SYNTAX, check_4bit, check_device
from ..fields import ModelName
from ..spec import MEASUREMENT, Curve, Input, Metric, Table

DESCRIPTION = (
    "Weight-degradation sweep: perturb one parameter group at increasing levels "
    "(mult_gauss / ablation / uni_quant), generate from a prompt set, track perplexity and diversity"
)
PRIMARY_METRIC = "perplexity"

# Greedy generation and perplexity on a fixed device reproduce up to float summation
# order; sampled text metrics and GPU kernels move them slightly, hence 1e-4
# (relative to values of order 1-100). Counts are exact; times are measurements.
METRICS = {
    "records": Metric(role="outcome", tol=0.0, label="records"),
    "perplexity*": Metric(role="outcome", tol=1e-4, label="perplexity", higher_is_better=False),
    "mean_tokens_out*": Metric(role="outcome", tol=1e-4, unit="tokens"),
    "distinct_2*": Metric(role="outcome", tol=1e-4),
    "mattr*": Metric(role="outcome", tol=1e-4),
    "repetition_rate*": Metric(role="outcome", tol=1e-4),
    "*_seconds": MEASUREMENT,
    "*_per_s": MEASUREMENT,
}
VIEWS = [
    Curve("perplexity by level", ("perplexity",), x="level", group_by="group"),
    Curve("distinct bigrams by level", ("distinct_2",), x="level", group_by="group"),
    Curve("repetition by level", ("repetition_rate",), x="level", group_by="group"),
    Curve("answer length by level", ("mean_tokens_out",), x="level", group_by="group"),
    Table("per level", "metric", ("group", "level", "name", "value")),
]

METHODS = ("mult_gauss", "ablation", "uni_quant")
GROUPS = ("attention", "mlp", "embedding", "all")
# Prompt sets shipped inside the package (prompts/<name>.toml).
PROMPT_SETS = ("dreams", "iq", "picture")
PROMPT_FILE_SUFFIXES = (".toml", ".json", ".txt")
# Shipped perplexity reference text, used when `perplexity_text` is empty.
BUILTIN_IMAGE = "builtin:kitchen"
# Levels each method can take: beyond these the weights overflow to inf/NaN (or, for
# uni_quant bits, the grid is meaningless), so a sweep would "complete" with NaN results.
LEVEL_RANGES = {
    "mult_gauss": (0.0, 100.0),  # σ of the multiplicative noise
    "ablation": (0.0, 1.0),  # fraction of weights zeroed
    "uni_quant": (0.0, 1000.0),  # grid step in standard deviations (mode step)
}
BITS_RANGE = (1, 32)  # uni_quant mode bits: whole bit counts (0 = the clean model)

_STRICT = ConfigDict(extra="forbid")


class GenerationParams(BaseModel):
    """Decoding settings, recorded per record as `gen_params` so an output can be re-derived."""

    model_config = _STRICT

    max_new_tokens: int = Field(
        256, ge=1, le=8192, description="tokens generated per prompt at most"
    )
    temperature: float = Field(
        1.0, gt=0.0, le=5.0, description="sampling temperature (ignored when do_sample is false)"
    )
    do_sample: bool = Field(True, description="sample (true) or decode greedily (false)")
    top_k: int = Field(64, ge=0, le=100000, description="top-k sampling cut-off (0 = off)")
    top_p: float = Field(0.95, gt=0.0, le=1.0, description="nucleus sampling mass")
    max_seq_length: int = Field(
        512,
        ge=16,
        le=131072,
        description="prompt tokens kept at most (raised to 1024 when an image is used)",
    )


class PromptParams(BaseModel):
    """Which prompts every (group, level, repeat) answers: all of them, as the seed does."""

    model_config = _STRICT

    set: Annotated[str, Input("file", builtin=PROMPT_SETS)] = Field(
        "dreams",
        min_length=1,
        description="shipped set (dreams | iq | picture) or a path to a .toml/.json/.txt prompt file",
    )
    limit: int = Field(0, ge=0, le=100000, description="use only the first N prompts (0 = all)")
    group: str = Field(
        "", max_length=64, description="prompt_group written in records (empty = the set's name)"
    )

    @field_validator("set")
    @classmethod
    def _known_set_or_file(cls, v: str) -> str:
        """The name's shape only: whether the file exists is checked with every other input
        at validation (backend/inputs.py), which also records its content hash."""
        if v in PROMPT_SETS:
            return v
        if not v.lower().endswith(PROMPT_FILE_SUFFIXES):
            raise ValueError(
                f"{v[:80]!r} is neither a shipped set ({', '.join(PROMPT_SETS)}) "
                f"nor a {'/'.join(PROMPT_FILE_SUFFIXES)} file"
            )
        return v


class ImageParams(BaseModel):
    """Image prompts for image+text models (the seed's picture-description experiment)."""

    model_config = _STRICT

    enabled: bool = Field(
        False, description="attach the image to every prompt (needs an image+text model)"
    )
    path: Annotated[str, Input("file", builtin=(BUILTIN_IMAGE,))] = Field(
        BUILTIN_IMAGE,
        min_length=1,
        description=f"image file, or {BUILTIN_IMAGE!r} for a kitchen scene drawn by labdeck",
    )


class MemoryParams(BaseModel):
    """The seed's VRAM policy, as fractions of device memory in use."""

    model_config = _STRICT

    grow_below: float = Field(
        0.40, gt=0.0, lt=1.0, description="grow the batch while memory use is under this"
    )
    pause_above: float = Field(
        0.90, gt=0.0, lt=1.0, description="warn and pause briefly above this"
    )
    shrink_above: float = Field(0.95, gt=0.0, le=1.0, description="shrink the batch above this")
    pause_seconds: float = Field(
        1.0, ge=0.0, le=60.0, description="length of the pause above pause_above"
    )

    @model_validator(mode="after")
    def _ordered(self) -> MemoryParams:
        if not self.grow_below < self.pause_above <= self.shrink_above:
            raise ValueError(
                "thresholds must satisfy grow_below < pause_above <= shrink_above "
                f"(got {self.grow_below}, {self.pause_above}, {self.shrink_above})"
            )
        return self


class Params(BaseModel):
    """One sweep: for each parameter group × level × repeat, degrade, then answer every prompt."""

    model_config = _STRICT

    model: ModelName = Field(
        "smollm2-135m", min_length=1, description="Hugging Face id, local path, or smollm2-135m"
    )
    load_4bit: bool = Field(
        False, description="load the model 4-bit quantised (bitsandbytes, CUDA only)"
    )
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        "auto", description="weight dtype (auto = the checkpoint's own)"
    )
    device: str = Field("auto", min_length=1, description="auto, cpu, cuda or cuda:N")

    @field_validator("device")
    @classmethod
    def _device_syntax(cls, v: str) -> str:
        if not DEVICE_SYNTAX.match(v):
            raise ValueError(f"{v[:40]!r}: expected auto, cpu, cuda or cuda:N")
        return v

    cpu_threads: int = Field(
        0,
        ge=0,
        le=1024,
        description="torch threads when running on the CPU (0 = torch's default, one per core)",
    )
    method: Literal["mult_gauss", "ablation", "uni_quant"] = Field(
        "mult_gauss",
        description="mult_gauss: w·(1+σN); ablation: zero a fraction; uni_quant: round to a grid",
    )
    uni_quant_mode: Literal["step", "bits"] = Field(
        "step",
        description="uni_quant level = grid step in units of the tensor's std (step) or bit count (bits)",
    )
    param_groups: list[Literal["attention", "mlp", "embedding", "all"]] = Field(
        default_factory=lambda: ["attention", "mlp", "embedding"],
        min_length=1,
        description="parameter groups degraded one at a time (attention, mlp, embedding, all)",
    )
    layer_start: int = Field(
        0, ge=0, le=10000, description="first decoder layer of attention/mlp groups"
    )
    layer_end: int | None = Field(
        None, ge=0, le=10000, description="last decoder layer, inclusive (null = the model's last)"
    )
    levels: list[float] = Field(
        default_factory=lambda: [round(0.025 * i, 3) for i in range(11)],
        min_length=1,
        max_length=1000,
        description="degradation levels (the seed's std_dev range); 0 = the clean model; "
        "mult_gauss 0..100, ablation 0..1, uni_quant step 0..1000 or bits 1..32",
    )
    n_rep: int = Field(
        1, ge=1, le=1000, description="repeats per level (fresh noise and seed each)"
    )
    seed: int = Field(42, ge=0, le=2**31 - 1, description="base seed; repeat r uses seed + r")
    max_batch_size: int = Field(
        40, ge=1, le=4096, description="upper bound of the adaptive batch size"
    )
    generation: GenerationParams = Field(
        default_factory=GenerationParams, description="decoding settings"
    )
    prompts: PromptParams = Field(default_factory=PromptParams, description="prompt set")
    compute_perplexity: bool = Field(
        False, description="compute perplexity once per (group, level)"
    )
    perplexity_text: str = Field(
        "",
        max_length=200000,
        description="text scored for perplexity (empty = the shipped reference text)",
    )
    image: ImageParams = Field(default_factory=ImageParams, description="image prompts")
    memory: MemoryParams = Field(default_factory=MemoryParams, description="memory thresholds")
    name_suffix: str = Field(
        "",
        max_length=64,
        pattern=r"^[A-Za-z0-9._-]*$",
        description="suffix of experiment_id and the seed-json file",
    )

    @field_validator("levels")
    @classmethod
    def _levels_valid(cls, v: list[float]) -> list[float]:
        bad = next((x for x in v if not math.isfinite(x)), None)
        if bad is not None:
            raise ValueError(f"levels must be finite numbers (got {bad})")
        if any(x < 0 for x in v):
            raise ValueError(f"levels must be >= 0 (got {min(v)})")
        if len(set(v)) != len(v):
            dup = next(x for x in v if v.count(x) > 1)
            raise ValueError(f"level {dup} appears twice")
        return v

    @field_validator("param_groups")
    @classmethod
    def _groups_unique(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"a group appears twice in {v}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Params:
        if self.layer_end is not None and self.layer_end < self.layer_start:
            raise ValueError(
                f"layer_end ({self.layer_end}) is before layer_start ({self.layer_start})"
            )
        packed = [g for g in self.param_groups if g != "embedding"]
        if self.load_4bit and packed:
            raise ValueError(
                f"load_4bit=true packs the linear weights of {', '.join(packed)} into 4-bit "
                "blocks, which cannot be degraded; set load_4bit=false or "
                "param_groups=['embedding'] (embeddings stay float)"
            )
        if self.method == "uni_quant" and self.uni_quant_mode == "bits":
            lo, hi = BITS_RANGE
            bad = [x for x in self.levels if x != int(x) or (0 < x < lo) or x > hi]
            if bad:
                raise ValueError(
                    f"uni_quant bits levels must be whole numbers in {lo}..{hi} or 0 (got {bad[0]})"
                )
            return self
        lo, hi = LEVEL_RANGES[self.method]
        out = [x for x in self.levels if not lo <= x <= hi]
        if out:
            what = "fractions " if self.method == "ablation" else ""
            raise ValueError(f"{self.method} levels are {what}in [{lo:g}, {hi:g}] (got {out[0]:g})")
        return self


def preflight(params: Params, where: Callable[[str], str]) -> None:
    """What this machine must provide, checked at validation (no torch import):
    the CUDA device named, and a GPU for 4-bit loading."""
    check_device(params.device, where("device"))
    if params.load_4bit:
        check_4bit(where("load_4bit"))
