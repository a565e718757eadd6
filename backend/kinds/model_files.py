"""What a model's and an adapter's files say before any weight is loaded.

A run that names a local model folder, a LoRA adapter, the modules to adapt or the
layers to read learns that one is wrong only when the weights are loaded, minutes in.
Everything here reads JSON files only (no torch import), so validation can refuse the
same mistakes at once, naming the parameter, before a run directory exists.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..inputs import describe_path, local_path

# The linear modules of the decoder families whose module names are fixed by their
# architecture (`model_type` in config.json). Other families are not checked here:
# their names are learned when the model loads.
_LLAMA_LIKE = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
MODULES_BY_TYPE: dict[str, tuple[str, ...]] = {
    **{
        t: _LLAMA_LIKE
        for t in (
            "llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3", "gemma3_text",
            "granite", "olmo", "olmo2", "smollm3", "cohere", "starcoder2_llama",
        )
    },
    "phi3": ("qkv_proj", "o_proj", "gate_up_proj", "down_proj"),
    "gpt2": ("c_attn", "c_proj", "c_fc"),
    "gpt_neox": ("query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"),
}  # fmt: skip
# Also adaptable everywhere: the output head; and peft's own shorthand.
ANY_MODEL_MODULES = ("lm_head",)
PEFT_SHORTHANDS = ("all-linear",)


def _read_json(path: Path, where: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"{where}: {path}: unreadable ({exc})") from None
    if not isinstance(data, dict):
        raise UserError(f"{where}: {path}: expected a JSON object")
    return data


def local_folder(value: str) -> Path | None:
    """`value` as an existing local path, or None (a hub id, an alias, a run reference)."""
    if value.startswith("run:"):
        return None
    path = local_path(value)
    try:
        return path if path is not None and path.exists() else None
    except OSError:
        return None


def model_config(value: str, where: str, embedded: Path | None = None) -> dict[str, Any] | None:
    """config.json of the model `value` names, when it is on this machine: a local folder
    (which must be a transformers model folder) or an embedded model already built.
    None for a hub id (its files are fetched at load)."""
    folder = local_folder(value)
    if folder is None and embedded is not None and embedded.is_dir():
        folder = embedded
    if folder is None:
        return None
    if not folder.is_dir():
        raise UserError(f"{where}: {value}: {describe_path(folder)}, not a model folder")
    config = folder / "config.json"
    if not config.is_file():
        if embedded is not None and folder == embedded:
            return None  # a half-built cache entry: rebuilt at load
        raise UserError(f"{where}: {value}: folder has no config.json; not a transformers model")
    return _read_json(config, where)


def adapter_config(value: str, where: str) -> dict[str, Any] | None:
    """adapter_config.json of a local LoRA adapter folder (None for a hub id)."""
    folder = local_folder(value)
    if folder is None:
        return None
    if not folder.is_dir():
        raise UserError(f"{where}: {value}: {describe_path(folder)}, not an adapter folder")
    config = folder / "adapter_config.json"
    if not config.is_file():
        raise UserError(
            f"{where}: {value}: no adapter_config.json in the folder; not a LoRA adapter "
            "(a peft save_pretrained folder)"
        )
    return _read_json(config, where)


def _text_config(config: dict[str, Any]) -> dict[str, Any]:
    inner = config.get("text_config")
    return inner if isinstance(inner, dict) else config


def num_layers(config: dict[str, Any]) -> int | None:
    text = _text_config(config)
    for key in ("num_hidden_layers", "n_layer", "num_layers"):
        if isinstance(text.get(key), int):
            return int(text[key])
    return None


def module_names(config: dict[str, Any]) -> tuple[str, ...] | None:
    """Linear module names of the architecture, or None when not known here."""
    text = _text_config(config)
    names = MODULES_BY_TYPE.get(str(text.get("model_type") or config.get("model_type")))
    return None if names is None else (*names, *ANY_MODEL_MODULES)


def check_target_modules(config: dict[str, Any], modules: list[str], where: str) -> None:
    known = module_names(config)
    if known is None:
        return
    for m in modules:
        if m in PEFT_SHORTHANDS or m.rsplit(".", 1)[-1] in known:
            continue
        kind = _text_config(config).get("model_type") or config.get("model_type")
        raise UserError(
            f"{where}: {m!r} is no module of this {kind} model; expected some of: "
            f"{', '.join(known)} (or 'all-linear')"
        )


def check_layers(config: dict[str, Any], layers: list[int], where: str) -> None:
    n = num_layers(config)
    if n is None:
        return
    bad = [x for x in layers if not 0 <= x < n]
    if bad:
        raise UserError(
            f"{where}: layer {bad[0]} does not exist; the model has {n} layers (0..{n - 1})"
        )


def check_local_model_name(value: str, where: str, embedded: tuple[str, ...]) -> None:
    """A model loaded here: an embedded alias, an existing local folder, or a hub id
    (`org/name`); anything else (`[red]x[/`, a path that is not there) fails at load."""
    from ..inputs import looks_like_hub_id

    if value in embedded or value.startswith("run:"):
        return
    folder = local_folder(value)
    if folder is not None:
        model_config(value, where)
        return
    if not looks_like_hub_id(value):
        raise UserError(
            f"{where}: {value!r}: no such local model folder, and not a hub id (org/name); "
            f"expected one of those or an embedded alias ({', '.join(embedded)})"
        )


def check_output_folder(value: str, where: str) -> None:
    """A folder the run will write into: an existing folder, or one that can be made
    under an existing, writable folder."""
    import os

    path = local_path(value)
    if path is None:
        raise UserError(f"{where}: {value!r}: not a usable path")
    if path.exists() and not path.is_dir():
        raise UserError(f"{where}: {value}: {describe_path(path)}, not a folder")
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise UserError(f"{where}: {value}: {probe} is {describe_path(probe)}, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(f"{where}: {value}: {probe} is not writable")
