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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from .errors import UserError
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

    def as_record(self, fingerprint: str | None) -> dict[str, Any]:
        out: dict[str, Any] = {"value": self.value}
        if self.hub:
            out["hub_id"] = self.value
        if self.path is not None:
            out["path"] = str(self.path)
            out["sha256"] = fingerprint
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
    return value.startswith(("/", "./", "../", "~")) or not _HUB_ID.match(value)


def _resolve_run_ref(value: str, spec: Input, results: Path, where: str) -> ResolvedInput:
    from .kinds import kind_config
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
        artifacts: dict[str, str] = dict(getattr(kind_config(run.kind), "ARTIFACTS", {}) or {})
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


def _check_what(path: Path, spec: Input, where: str, value: str) -> None:
    if spec.what == "file" and not path.is_file():
        raise UserError(f"{where}: {value}: not a regular file")
    if spec.what == "dir" and not path.is_dir():
        raise UserError(f"{where}: {value}: not a folder")


def _resolve_one(value: str, spec: Input, results: Path, where: str, name: str) -> ResolvedInput:
    if value.startswith(RUN_PREFIX):
        resolved = _resolve_run_ref(value, spec, results, where)
        resolved.param = name
        return resolved
    path = Path(value).expanduser()
    if path.exists():
        path = path.resolve()
        _check_what(path, spec, where, value)
        return ResolvedInput(name, value, path)
    if spec.hub_ok and not _looks_like_path(value):
        return ResolvedInput(name, value, None, hub=True)
    what = {"file": "file", "dir": "folder", "any": "file or folder"}[spec.what]
    raise UserError(f"{where}: {value}: no such {what}")


def check_inputs(
    model: BaseModel, results: Path, source: str = "params"
) -> dict[str, ResolvedInput]:
    """Resolve every input of `model` now; the first missing one is a UserError naming it."""
    out: dict[str, ResolvedInput] = {}
    for name, spec, is_list in input_fields(type(model)):
        value = _value_at(model, name)
        values = list(value or []) if is_list else [value]
        for i, item in enumerate(values):
            if item is None or str(item).strip() == "":
                continue
            label = f"{name}[{i}]" if is_list else name
            out[label] = _resolve_one(str(item), spec, results, f"{source}: params.{label}", label)
    return out


# --------------------------------------------------------------------------- fingerprints


def fingerprint(path: Path) -> str:
    """sha256 of a file's content, or of a folder's relative names, sizes and contents."""
    h = hashlib.sha256()
    if path.is_file():
        _hash_file(path, h)
        return h.hexdigest()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = f.relative_to(path).as_posix()
        if any(part.startswith(".") for part in Path(rel).parts):
            continue  # staging folders, lock files: not content
        h.update(rel.encode() + b"\0")
        _hash_file(f, h)
    return h.hexdigest()


def _hash_file(path: Path, h: Any) -> None:
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
    return {
        name: r.as_record(fingerprint(r.path) if r.path is not None else None)
        for name, r in resolved.items()
    }


def changed_inputs(
    recorded: dict[str, dict[str, Any]], model: BaseModel, results: Path, source: str
) -> list[str]:
    """What differs between the recorded inputs and what the same parameters resolve to now.

    Each entry is a sentence naming the parameter and the change; an input that no
    longer resolves raises the validation error itself.
    """
    now = record_inputs(check_inputs(model, results, source))
    changes = []
    for name in sorted(set(recorded) | set(now)):
        old, new = recorded.get(name, {}), now.get(name, {})
        if old.get("run", {}).get("md5") != new.get("run", {}).get("md5"):
            changes.append(
                f"params.{name}: referenced run md5 was {old.get('run', {}).get('md5')}, "
                f"now {new.get('run', {}).get('md5')}"
            )
        elif old.get("sha256") != new.get("sha256"):
            changes.append(
                f"params.{name}: {new.get('path') or old.get('path')}: content sha256 was "
                f"{str(old.get('sha256'))[:12]}…, now {str(new.get('sha256'))[:12]}…"
            )
    return changes
