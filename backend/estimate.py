"""What a model will need before a single weight is loaded: the one estimator behind every
dry run (memory from the model's config on the meta device, time from a roofline).

The model is built on the meta device from its config alone, so sizes are the real
ones at no memory cost. Time is a roofline guess: decoding reads every weight once per
step, so it is bandwidth-bound at small batches and compute-bound at large ones; the
rates are effective ones, not peaks, and the result is labelled rough wherever shown.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .jsonio import write_json_atomic

_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


@dataclass(frozen=True)
class Hardware:
    """Effective (not peak) rates: a CPU core pair as measured with smollm2-135m; a datacentre GPU
    (H100-class) by its published bandwidth and bf16 throughput, derated by about half."""

    name: str
    bandwidth: float  # bytes/s actually achieved when streaming weights
    flops: float  # FLOP/s actually achieved by batched matmuls

    @classmethod
    def for_device(cls, device: str) -> Hardware:
        if device.startswith("cuda"):
            return cls("cuda", 1.2e12, 1.5e14)
        return cls("cpu", 6e9, 3e10)


def auto_device() -> str:
    """Where `auto` places a model here: the first CUDA device, else the CPU (torch-free)."""
    from .devices import cuda_device_count

    return "cuda:0" if cuda_device_count() else "cpu"


def device_for_map(device_map: str) -> str:
    """Where a kind's `device_map` puts the model: the CPU for "none"/"cpu", else where
    `auto` would (a CUDA device when there is one)."""
    return "cpu" if device_map in ("none", "cpu") else auto_device()


def _config_source(spec: str) -> str | None:
    from .models import EMBEDDED, embedded_dir

    if spec in EMBEDDED:
        folder = embedded_dir(spec)
        return str(folder) if (folder / "config.json").is_file() else None
    return spec


def meta_model(spec: str) -> Any | None:
    """The model's module tree with no storage (None when its config is not available
    offline: an uncached Hub id); image+text models get their image-text class."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText

    source = _config_source(spec)
    if source is None:
        return None
    try:  # local only: a dry run must answer at once, never wait on Hub retries
        config = AutoConfig.from_pretrained(source, local_files_only=True)
    except (OSError, ValueError):
        return None
    cls = (
        AutoModelForImageTextToText
        if getattr(config, "vision_config", None)
        else AutoModelForCausalLM
    )
    try:
        with torch.device("meta"):
            return cls.from_config(config)
    except (ValueError, KeyError):
        return None


@dataclass(frozen=True)
class Footprint:
    """A model's size and cache geometry without its weights."""

    params: int
    layers: int
    kv_heads: int
    head_dim: int
    bytes_per_param: float
    dtype: str
    hidden: int = 0

    @property
    def weight_bytes(self) -> int:
        return int(self.params * self.bytes_per_param)

    @property
    def value_bytes(self) -> int:
        """Bytes of one activation or cached key/value (the compute dtype's)."""
        return _BYTES.get(self.dtype, 2)

    def kv_cache_bytes(self, batch: int, seq_len: int) -> int:
        """Keys and values for every layer, head and position of a batch."""
        per_token = 2 * self.layers * self.kv_heads * self.head_dim * self.value_bytes
        return int(per_token * batch * seq_len)

    @classmethod
    def of(cls, model: Any, dtype: str = "auto", load_4bit: bool = False) -> Footprint:
        """From a (meta or real) model: every parameter counted once, tied weights included."""
        return cls.from_geometry(cls.geometry_of(model), dtype, load_4bit)

    @staticmethod
    def geometry_of(model: Any) -> dict[str, Any]:
        """What a footprint needs of a model, as plain JSON (cacheable)."""
        config = model.config
        text = config.get_text_config() if hasattr(config, "get_text_config") else config
        stored = str(getattr(text, "dtype", None) or getattr(config, "dtype", None) or "float32")
        heads = int(text.num_attention_heads)
        return {
            "params": sum(t.numel() for t in model.parameters()),
            "layers": int(text.num_hidden_layers),
            "kv_heads": int(getattr(text, "num_key_value_heads", None) or heads),
            "head_dim": int(getattr(text, "head_dim", None) or text.hidden_size // heads),
            "hidden": int(text.hidden_size),
            "stored_dtype": stored.removeprefix("torch."),
        }

    @classmethod
    def from_geometry(
        cls, geometry: dict[str, Any], dtype: str = "auto", load_4bit: bool = False
    ) -> Footprint:
        resolved = geometry["stored_dtype"] if dtype == "auto" else dtype
        return cls(
            params=int(geometry["params"]),
            layers=int(geometry["layers"]),
            kv_heads=int(geometry["kv_heads"]),
            head_dim=int(geometry["head_dim"]),
            bytes_per_param=0.5 if load_4bit else _BYTES.get(resolved, 4),
            dtype=resolved,
            hidden=int(geometry["hidden"]),
        )


FOOTPRINT_CACHE = "footprints.json"  # under the labdeck cache root (models.cache_root)


def _config_key(spec: str) -> str | None:
    """What a footprint depends on: a local or embedded model's config.json content (a
    changed file is a new key), a Hub id as named (its cached config)."""
    source = _config_source(spec)
    if source is None:
        return None
    config = Path(source) / "config.json"
    try:
        if config.is_file():
            return f"config@{hashlib.sha256(config.read_bytes()).hexdigest()[:24]}"
    except OSError:
        return None
    return f"hub:{spec}"


def _cache_path() -> Path:
    from .models import cache_root

    return cache_root() / FOOTPRINT_CACHE


def _cached_geometry(key: str) -> dict[str, Any] | None:
    try:
        entry = json.loads(_cache_path().read_text(encoding="utf-8")).get(key)
    except (OSError, ValueError, AttributeError):
        return None
    return entry if isinstance(entry, dict) else None


def _store_geometry(key: str, geometry: dict[str, Any]) -> None:
    """Best effort: a read-only cache only costs the next dry run its model build."""
    path = _cache_path()
    try:
        known = json.loads(path.read_text(encoding="utf-8"))
        known = known if isinstance(known, dict) else {}
    except (OSError, ValueError):
        known = {}
    known[key] = geometry
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, known)


def footprint(spec: str, dtype: str = "auto", load_4bit: bool = False) -> Footprint | None:
    """`spec`'s footprint from its config alone; None when the config is not available
    offline, so a dry run says it cannot estimate instead of guessing.

    Building the meta model needs torch and transformers, seconds of imports for a
    dry run that is otherwise instant; the geometry it yields is cached by the config's
    content, so later dry runs (the launch form's estimate) import neither."""
    key = _config_key(spec)
    geometry = _cached_geometry(key) if key else None
    if geometry is None:
        model = meta_model(spec)
        if model is None:
            return None
        geometry = Footprint.geometry_of(model)
        if key:
            _store_geometry(key, geometry)
    try:
        return Footprint.from_geometry(geometry, dtype, load_4bit)
    except (KeyError, TypeError, ValueError):  # a cache entry from another version
        model = meta_model(spec)
        return None if model is None else Footprint.of(model, dtype, load_4bit)


def generation_seconds(
    fp: Footprint, hw: Hardware, *, prompts: int, batch: int, prompt_tokens: int, new_tokens: int
) -> float:
    """Answering `prompts` prompts in batches of `batch`: prefill (compute-bound) plus one
    decode step per new token (the slower of streaming the weights and the matmuls)."""
    total, remaining = 0.0, prompts
    while remaining > 0:
        b = min(batch, remaining)
        prefill = 2 * fp.params * b * prompt_tokens / hw.flops
        step = max(fp.weight_bytes / hw.bandwidth, 2 * fp.params * b / hw.flops)
        total += prefill + new_tokens * step
        remaining -= b
    return total


def forward_seconds(fp: Footprint, hw: Hardware, tokens: int) -> float:
    """One forward pass over `tokens` tokens (perplexity): compute-bound."""
    return 2 * fp.params * tokens / hw.flops


def lora_training_seconds(fp: Footprint, hw: Hardware, tokens: int) -> float:
    """Training an adapter on `tokens` tokens: the forward pass plus the backward's
    activation gradients (about as much again); frozen weights get no weight gradients."""
    return 2 * forward_seconds(fp, hw, tokens)


def training_activation_bytes(fp: Footprint, batch: int, seq_len: int) -> int:
    """Activations kept for the backward pass of one micro-batch (Korthikanti et al.'s
    per-layer count for a transformer block, scaled to the compute dtype)."""
    if not fp.hidden:
        return 0
    heads = max(1, fp.hidden // max(1, fp.head_dim))
    per_layer = seq_len * batch * fp.hidden * (34 + 5 * heads * seq_len / fp.hidden)
    return int(fp.layers * per_layer * fp.value_bytes / 2)


CHARS_PER_TOKEN = 4  # English text through a BPE tokenizer, near enough for a rough time


def text_tokens(*texts: str) -> int:
    """Tokens of some text without a tokenizer (characters / 4): dry runs stay instant."""
    return max(1, sum(len(t) for t in texts) // CHARS_PER_TOKEN)


def mean_tokens(counts: list[int], default: int) -> int:
    """The mean of some token counts, `default` when there are none (no data here yet)."""
    return sum(counts) // len(counts) if counts else default


def not_estimated(spec: str) -> str:
    """The dry-run line for a model whose config is not available offline."""
    return f"{spec}: config not available offline; memory and time not estimated"


def rough_time_line(device: str, seconds: dict[str, float], left_out: list[str]) -> str:
    """One line of per-stage rough times, naming what could not be counted offline."""
    from .units import format_duration

    parts = ", ".join(f"{k} {format_duration(v, 'compact')}" for k, v in seconds.items())
    line = f"rough time on {device}: {parts or 'nothing local'}"
    return line + (f"; not counted: {', '.join(left_out)}" if left_out else "")
