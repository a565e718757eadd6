"""Input files, folders and run references named by parameters.

A parameter whose type carries `Input(...)` (backend/kinds/spec.py) names something the
run reads: a dataset, a prompt file, an adapter, a model folder, or another run's output
as a *run reference*, `run:<id>` or `run:<id>/<artifact>` (any form `labdeck` accepts for
a run). Three moments use this module:

- validation (`check_inputs`): the input must exist now, so a typo is one line and exit 2
  before any run directory exists, not a failed run five seconds later;
- creation (`record_inputs`): config.json records, per input, the resolved local path, the
  referenced run's id and md5, and a content fingerprint, so the run says exactly what it
  read;
- reproduction (`changed_inputs`): the same references are resolved again and any
  difference is named, so a reproduction never silently reads other data.

The parameter values themselves stay as the user wrote them (they are what md5 covers);
kinds read the resolved path through `RunContext.input_path(name)`.
"""

from __future__ import annotations

import hashlib
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from .errors import UserError, shorten
from .kinds.spec import Input

RUN_PREFIX = "run:"
# Whole files up to this size are hashed; larger ones (model weights) are fingerprinted by
# their size and their first and last chunk, which any real change of weights touches.
FULL_HASH_LIMIT = 64 << 20
EDGE_CHUNK = 4 << 20
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


@dataclass
class ResolvedInput:
    """One input as the run will read it."""

    param: str
    value: str
    path: Path | None
    run: dict[str, Any] | None = None
    hub: bool = False

    def as_record(self) -> dict[str, Any]:
        out: dict[str, Any] = {"value": self.value}
        if self.hub:
            out["hub_id"] = self.value
        if self.path is not None:
            method = hash_method(self.path)
            out["path"] = str(self.path)
            out["sha256"] = fingerprint(self.path, method)
            out["hash"] = method
        if self.run is not None:
            out["run"] = self.run
        return out


# --------------------------------------------------------------------------- discovery


def input_fields(cls: type[BaseModel], prefix: str = "") -> list[tuple[str, Input, bool]]:
    """(dotted name, marker, is_list) for every Input-marked field, nested models included."""
    out: list[tuple[str, Input, bool]] = []
    for name, field in cls.model_fields.items():
        dotted = f"{prefix}{name}"
        marker = next((m for m in field.metadata if isinstance(m, Input)), None)
        ann = field.annotation
        if marker is not None:
            out.append((dotted, marker, typing.get_origin(_strip_optional(ann)) is list))
            continue
        inner = _strip_optional(ann)
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            out.extend(input_fields(inner, dotted + "."))
    return out


def _strip_optional(ann: Any) -> Any:
    if typing.get_origin(ann) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(ann) if a is not type(None)]
        return args[0] if len(args) == 1 else ann
    return ann


def _value_at(model: BaseModel, dotted: str) -> Any:
    node: Any = model
    for part in dotted.split("."):
        node = getattr(node, part, None)
    return node


# --------------------------------------------------------------------------- resolution


def parse_run_ref(value: str) -> tuple[str, str | None] | None:
    """`run:<id>[/<artifact>]` -> (id, artifact); None for anything else."""
    if not value.startswith(RUN_PREFIX):
        return None
    body = value[len(RUN_PREFIX) :].strip()
    token, _, artifact = body.partition("/")
    return token, artifact or None


def _looks_like_path(value: str) -> bool:
    """A value meant as a local path: explicit path syntax, not hub-id shaped, or its first
    component is an existing local folder (`models/mine` when ./models exists)."""
    if value.startswith(("/", ".", "~")) or not _HUB_ID.match(value):
        return True
    head = value.split("/", 1)[0]
    return "/" in value and _exists(Path(head))


def looks_like_hub_id(value: str) -> bool:
    """`org/name` or `name` in the characters a Hugging Face repository id may hold."""
    return bool(_HUB_ID.match(value))


def local_path(value: str) -> Path | None:
    """`value` as a path with `~` expanded; None when it cannot name a local file at all
    (a NUL byte, an unknown `~user`)."""
    if "\x00" in value:
        return None
    try:
        return Path(value).expanduser()
    except RuntimeError:  # ~user with no such user
        return None


def _exists(path: Path | None) -> bool:
    """`path.exists()` that answers False instead of raising (name too long, no permission)."""
    if path is None:
        return False
    try:
        return path.exists()
    except (OSError, ValueError):
        return False


def _resolve_run_ref(value: str, spec: Input, results: Path, where: str) -> ResolvedInput:
    from .kinds import kind_config
    from .kinds.base import declared_artifacts
    from .runs import resolve_run

    token, artifact = parse_run_ref(value) or ("", None)
    if not token:
        raise UserError(f"{where}: {value!r}: a run reference is run:<id> or run:<id>/<artifact>")
    try:
        run = resolve_run(results, token)
    except UserError as exc:
        raise UserError(f"{where}: {exc}") from None
    status = run.status()
    if status != "completed":
        raise UserError(
            f"{where}: {value}: run {run.id} is {status}; only a completed run can be used"
        )
    try:
        artifacts = declared_artifacts(kind_config(run.kind))
    except UserError:
        artifacts = {}
    if artifact is None:
        wanted = [a for a in spec.run_artifacts if a in artifacts] or list(artifacts)
        rel = artifacts[wanted[0]] if wanted else "."
        artifact = wanted[0] if wanted else None
    elif artifact in artifacts:
        rel = artifacts[artifact]
    else:
        known = ", ".join(artifacts) or "none declared"
        raise UserError(
            f"{where}: {value}: kind {run.kind!r} has no artifact {artifact!r} (known: {known})"
        )
    path = (run.path / rel).resolve()
    if not path.exists():
        raise UserError(f"{where}: {value}: {path} does not exist in run {run.id}")
    _check_what(path, spec, where, value)
    ref = {"id": run.id, "md5": run.config.get("md5"), "artifact": artifact}
    return ResolvedInput(where.rsplit("params.", 1)[-1], value, path, run=ref)


def describe_path(path: Path) -> str:
    """What is at `path`, in words: `a folder`, `a character device`, `no such file`…
    so a refusal says what the user actually pointed at."""
    import stat

    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "no such file or folder"
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    for test, words in (
        (stat.S_ISREG, "a regular file"),
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a named pipe"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return words
    return "not a regular file"


def _check_what(path: Path, spec: Input, where: str, value: str) -> None:
    if spec.what == "file" and not path.is_file():
        raise UserError(f"{where}: {value}: {describe_path(path)}, not a regular file")
    if spec.what == "dir" and not path.is_dir():
        raise UserError(f"{where}: {value}: {describe_path(path)}, not a folder")
    if spec.what == "any" and not (path.is_file() or path.is_dir()):
        raise UserError(f"{where}: {value}: {describe_path(path)}, not a file or folder")


def _resolve_one(value: str, spec: Input, results: Path, where: str, name: str) -> ResolvedInput:
    if value in spec.builtin:
        return ResolvedInput(name, value, None)
    if value.startswith(RUN_PREFIX):
        resolved = _resolve_run_ref(value, spec, results, where)
        resolved.param = name
        return resolved
    path = local_path(value)
    if path is not None and _exists(path):
        path = path.resolve()
        _check_what(path, spec, where, value)
        return ResolvedInput(name, value, path)
    if spec.hub_ok and not _looks_like_path(value):
        return ResolvedInput(name, value, None, hub=True)
    what = {"file": "file", "dir": "folder", "any": "file or folder"}[spec.what]
    raise UserError(f"{where}: {shorten(value)}: no such {what}")


def check_inputs(
    model: BaseModel, results: Path, source: str | Callable[[str], str] = "params"
) -> dict[str, ResolvedInput]:
    """Resolve every input of `model` now; the first missing one is a UserError naming it.

    `source` says where the values came from (a preset path), or is a function giving the
    full "where" of a parameter name, so a value set by `--set` is blamed on that flag.
    """
    out: dict[str, ResolvedInput] = {}
    for name, spec, is_list in input_fields(type(model)):
        value = _value_at(model, name)
        values = list(value or []) if is_list else [value]
        for i, item in enumerate(values):
            if item is None or str(item).strip() == "":
                continue
            label = f"{name}[{i}]" if is_list else name
            where = source(label) if callable(source) else f"{source}: params.{label}"
            out[label] = _resolve_one(str(item), spec, results, where, label)
    return out


# --------------------------------------------------------------------------- fingerprints


# How a recorded `sha256` was computed. A file's is the plain sha256 of its bytes, so
# `sha256sum FILE` prints the same value; a folder's covers its names and contents.
# Runs recorded before the methods were named (no `hash` key) used LEGACY for both.
HASH_FILE = "sha256"
HASH_TREE = "sha256-tree"
LEGACY = "legacy"


def fingerprint(path: Path, method: str | None = None) -> str:
    """The content hash of a file or folder by `method` (default: the current one for
    what `path` is). Old runs are checked in their own method, so their records stay
    comparable after the file method became plain sha256."""
    method = method or (HASH_FILE if path.is_file() else HASH_TREE)
    h = hashlib.sha256()
    if path.is_file():
        if method == HASH_FILE:
            with open(path, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
        else:
            _hash_file(path, h)
        return h.hexdigest()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = f.relative_to(path).as_posix()
        if any(part.startswith(".") for part in Path(rel).parts):
            continue  # staging folders, lock files: not content
        h.update(rel.encode() + b"\0")
        _hash_file(f, h)
    return h.hexdigest()


def hash_method(path: Path) -> str:
    return HASH_FILE if path.is_file() else HASH_TREE


def _hash_file(path: Path, h: Any) -> None:
    """A folder member (or a file of an old run): its size, then its content, or only its
    first and last chunk when it is larger than FULL_HASH_LIMIT (model weights)."""
    size = path.stat().st_size
    h.update(str(size).encode() + b"\0")
    with open(path, "rb") as fh:
        if size <= FULL_HASH_LIMIT:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        else:
            h.update(fh.read(EDGE_CHUNK))
            fh.seek(size - EDGE_CHUNK)
            h.update(fh.read(EDGE_CHUNK))


def record_inputs(resolved: dict[str, ResolvedInput]) -> dict[str, dict[str, Any]]:
    """config.json's `inputs` table: what each input resolved to, with its fingerprint."""
    return {name: r.as_record() for name, r in resolved.items()}


def recorded_method(entry: dict[str, Any]) -> str:
    """The hash method of a recorded input (runs older than the `hash` key: LEGACY)."""
    return str(entry.get("hash") or LEGACY)


def _hash_as_recorded(entry: dict[str, Any], path: Path) -> str:
    return fingerprint(path, recorded_method(entry))


def _content_change(name: str, old: dict[str, Any], new_path: Path | None) -> str | None:
    """A sentence naming the file and both hashes when `new_path` no longer holds what
    `old` recorded; None when it does."""
    recorded = old.get("sha256")
    if not recorded:
        return None
    shown = new_path or old.get("path")
    if new_path is None or not _exists(new_path):
        return f"params.{name}: {shown}: no longer exists (recorded sha256 {recorded})"
    try:
        now = _hash_as_recorded(old, new_path)
    except OSError as exc:
        return f"params.{name}: {shown}: cannot be read ({exc.strerror or exc})"
    if now == recorded:
        return None
    return f"params.{name}: {shown}: content changed (recorded sha256 {recorded}, now {now})"


def changed_inputs(
    recorded: dict[str, dict[str, Any]], model: BaseModel, results: Path, source: str
) -> list[str]:
    """What differs between the recorded inputs and what the same parameters resolve to now.

    Each entry is a sentence naming the parameter and the change; an input that no
    longer resolves raises the validation error itself.
    """
    now = check_inputs(model, results, source)
    changes = []
    for name in sorted(set(recorded) | set(now)):
        old, new = recorded.get(name, {}), now.get(name)
        old_md5 = (old.get("run") or {}).get("md5")
        new_md5 = ((new.run if new else None) or {}).get("md5")
        if old_md5 != new_md5:
            changes.append(f"params.{name}: referenced run md5 was {old_md5}, now {new_md5}")
            continue
        new_path = new.path if new else None
        if new_path is not None and not old.get("sha256"):
            changes.append(f"params.{name}: {new_path}: read now but not recorded by the run")
            continue
        change = _content_change(name, old, new_path)
        if change:
            changes.append(change)
    return changes


def changed_since_recorded(recorded: dict[str, dict[str, Any]]) -> list[str]:
    """What a resume would read differently: every recorded input file or folder hashed
    again at the path the run resolved it to (what the kind reads, through
    `RunContext.input_path`), in the method it was recorded with."""
    changes = []
    for name, entry in sorted(recorded.items()):
        if entry.get("path") and entry.get("sha256"):
            change = _content_change(name, entry, Path(entry["path"]))
            if change:
                changes.append(change)
    return changes
