"""A protocol-test kind: numbered units of pure-Python work with a controllable pace.

It exercises the run protocol (records, resume, stop, kill, reproduce) fast and
deterministically; the model-backed kinds are tested in their own folders.
"""

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from labdeck.backend.kinds.spec import Input

DESCRIPTION = "count through numbered units (protocol tests)"
PRIMARY_METRIC = "total"
# `note` stands for a parameter added after some runs were recorded: those ran with "legacy".
ADDED_PARAMS = {"note": "legacy"}
ARTIFACTS = {"summary": "artifacts/summary.json", "records": "records.jsonl"}


class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scale: float = Field(1.0, ge=0, description="multiplies every value")


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")
    units: int = Field(20, ge=1, le=100000, description="number of work units")
    unit_seconds: float = Field(0.0, ge=0, description="sleep per unit")
    seed: int = Field(0, description="seed of the values")
    fail_at: int = Field(-1, description="raise an error at this unit (-1: never)")
    note: str | None = Field(None, description="free text")
    library_noise: bool = Field(
        False, description="libraries warn on stderr as the run starts (transformers, warnings)"
    )
    inner: Inner = Field(default_factory=Inner, description="nested parameters")
    data: Annotated[str | None, Input("file")] = Field(
        None, description="a text file whose line count is added to every value"
    )
