"""Presets (TOML) → validated, fully explicit parameters; and the text forms of parameters.

Resolution order: the kind's defaults ← the preset's `[params]` (after `extends`)
← `--set key=value` overrides. The result is the complete explicit parameter set
that config.json records and that `commands.run_explicit` spells out, so a run
never depends on today's code defaults to be reproduced.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w
from pydantic import BaseModel, ValidationError

from .errors import UserError
from .jsonio import canonical_json
from .kinds import kind_config, kind_names
from .secrets import refuse_secret_values

PRESET_KEYS = ("kind", "title", "description", "extends", "params", "grid", "launcher")
NULL = "null"  # TOML has no null; `--set key=null` means None


def default_preset_dirs() -> list[Path]:
    """./presets first (the user's own), then the presets shipped next to the package."""
    here = Path(__file__).resolve().parent.parent / "presets"
    dirs = [Path("presets")]
    if here.resolve() != Path("presets").resolve():
        dirs.append(here)
    return dirs


@dataclass
class Preset:
    path: Path
    kind: str
    title: str
    description: str
    params: dict[str, Any]
    sha256: str
    chain: list[str] = field(default_factory=list)  # extends targets, nearest first
    grid: dict[str, Any] = field(default_factory=dict)  # [grid]: parameter -> list of values
    launcher: dict[str, Any] = field(default_factory=dict)  # [launcher]: where runs execute


@dataclass
class PresetInfo:
    path: Path
    kind: str = ""
    title: str = ""
    description: str = ""
    error: str | None = None


def _read_toml(path: Path, referrer: Path | None = None) -> tuple[dict[str, Any], str]:
    where = f" (extended by {referrer})" if referrer else ""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: preset file not found{where}") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read preset ({exc.strerror}){where}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: malformed TOML: {exc}") from None
    unknown = sorted(set(data) - set(PRESET_KEYS))
    if unknown:
        raise UserError(
            f"{path}: unknown top-level key {unknown[0]!r}; expected one of: {', '.join(PRESET_KEYS)}"
        )
    for table in ("params", "grid", "launcher"):
        if table in data and not isinstance(data[table], dict):
            raise UserError(
                f"{path}: {table!r} must be a table ([{table}]), got {type(data[table]).__name__}"
            )
    for key in ("kind", "title", "description", "extends"):
        if key in data and not isinstance(data[key], str):
            raise UserError(f"{path}: {key!r} must be a string, got {data[key]!r}")
    return data, text


def deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """Tables merge key by key; any other value in `top` replaces the one in `base`."""
    out = copy.deepcopy(base)
    for k, v in top.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def load_preset(path: Path | str) -> Preset:
    """Read a preset, following `extends` (relative to the file that names it)."""
    path = Path(path)
    seen: list[Path] = []
    layers: list[dict[str, Any]] = []
    current, referrer = path, None
    top_text = ""
    while True:
        resolved = current.resolve()
        if resolved in seen:
            raise UserError(
                f"{current}: 'extends' cycle ({' -> '.join(str(p) for p in [*seen, resolved])})"
            )
        seen.append(resolved)
        data, text = _read_toml(current, referrer)
        if not top_text:
            top_text = text
        layers.append(data)
        if "extends" not in data:
            break
        referrer, current = current, current.parent / data["extends"]
    merged: dict[str, Any] = {}
    for layer in reversed(layers):
        merged = deep_merge(merged, layer)
    if "kind" not in merged:
        raise UserError(f"{path}: missing 'kind'; expected one of: {', '.join(kind_names())}")
    if merged["kind"] not in kind_names():
        raise UserError(
            f"{path}: kind: unknown kind {merged['kind']!r}; expected one of: {', '.join(kind_names())}"
        )
    return Preset(
        path=path,
        kind=merged["kind"],
        title=merged.get("title") or path.stem,
        description=merged.get("description", ""),
        params=merged.get("params", {}),
        sha256=hashlib.sha256(top_text.encode("utf-8")).hexdigest(),
        chain=[str(p) for p in seen[1:]],
        grid=merged.get("grid", {}),
        launcher=merged.get("launcher", {}),
    )


def list_presets(dirs: list[Path] | None = None) -> list[PresetInfo]:
    """Every *.toml preset found; a broken one is listed with its error instead of hiding it."""
    out: list[PresetInfo] = []
    seen_names: set[str] = set()
    for d in dirs or default_preset_dirs():
        if not d.is_dir():
            continue
        for p in sorted(d.glob("*.toml")):
            if p.name in seen_names:
                continue
            seen_names.add(p.name)
            try:
                pr = load_preset(p)
                out.append(PresetInfo(p, pr.kind, pr.title, pr.description))
            except UserError as exc:
                out.append(PresetInfo(p, error=str(exc)))
    return out


# --------------------------------------------------------------------------- --set


def parse_value(text: str) -> Any:
    """A value in TOML syntax (`0.1`, `[1, 2]`, `true`, `"x"`); a bare word is a string."""
    if text == NULL:
        return None
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        if text[:1] not in "[{\"'":
            return text
    try:  # containers holding null are written as JSON (TOML has no null)
        return json.loads(text)
    except ValueError:
        raise UserError(f"--set value {text!r}: malformed TOML value") from None


def parse_set(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise UserError(
            f"--set {item!r}: expected key=value (TOML value syntax, dotted keys for nesting)"
        )
    key, _, raw = item.partition("=")
    parts = [p.strip() for p in key.strip().split(".")]
    if not all(parts):
        raise UserError(f"--set {item!r}: empty key")
    return parts, parse_value(raw.strip())


def apply_sets(params: dict[str, Any], sets: list[str]) -> dict[str, Any]:
    out = copy.deepcopy(params)
    for item in sets:
        parts, value = parse_set(item)
        node = out
        for p in parts[:-1]:
            nxt = node.get(p)
            if not isinstance(nxt, dict):
                nxt = node[p] = {}
            node = nxt
        node[parts[-1]] = value
    return out


# --------------------------------------------------------------------------- resolution


@dataclass
class Resolved:
    kind: str
    model: BaseModel
    params: dict[str, Any]
    defaults: dict[str, Any]
    overrides: dict[str, Any]

    @property
    def md5(self) -> str:
        return params_md5(self.params)


def params_md5(params: dict[str, Any]) -> str:
    return hashlib.md5(canonical_json(params).encode("utf-8")).hexdigest()


def defaults_of(kind: str) -> dict[str, Any]:
    return kind_config(kind).Params().model_dump(mode="json")


def _describe_error(
    err: dict[str, Any], source: str, set_keys: set[str], params_cls: type[BaseModel]
) -> str:
    loc = ".".join(str(x) for x in err.get("loc", ()))
    if loc in set_keys or any(loc.startswith(k + ".") for k in set_keys):
        source = f"--set {loc}"
    if err.get("type") == "extra_forbidden":
        known = ", ".join(flatten(params_cls().model_dump(mode="json")).keys())
        return f"{source}: params.{loc}: unknown parameter; expected one of: {known}"
    got = err.get("input")
    got_txt = f" (got {got!r})" if not isinstance(got, dict) else ""
    return f"{source}: params.{loc}: {err.get('msg', 'invalid value')}{got_txt}"


def resolve(
    kind: str, raw: dict[str, Any], sets: list[str] | None = None, source: str = "params"
) -> Resolved:
    """Validate `raw` (+ `--set` overrides) against the kind's schema: the explicit parameter set."""
    cfg = kind_config(kind)
    sets = sets or []
    merged = apply_sets(raw, sets)
    set_keys = {".".join(parse_set(s)[0]) for s in sets}
    try:
        model = cfg.Params.model_validate(merged)
    except ValidationError as exc:
        raise UserError(_describe_error(exc.errors()[0], source, set_keys, cfg.Params)) from None
    params = model.model_dump(mode="json")
    defaults = defaults_of(kind)
    flat_p, flat_d = flatten(params), flatten(defaults)
    refuse_secret_values(flat_p, source)
    overrides = {k: v for k, v in flat_p.items() if flat_d.get(k, object()) != v}
    return Resolved(kind, model, params, defaults, overrides)


# --------------------------------------------------------------------------- text forms


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested tables → dotted keys (lists stay whole values)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def toml_value(v: Any) -> str:
    """The inverse of `parse_value`, exactly: parse_value(toml_value(v)) == v."""
    if v is None:
        return NULL
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list | tuple | dict) and _holds_none(v):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return (
            "{" + ", ".join(f"{json.dumps(str(k))} = {toml_value(x)}" for k, x in v.items()) + "}"
        )
    raise TypeError(f"cannot write {type(v).__name__} as a TOML value")


def _holds_none(v: Any) -> bool:
    if v is None:
        return True
    if isinstance(v, dict):
        return any(_holds_none(x) for x in v.values())
    if isinstance(v, list | tuple):
        return any(_holds_none(x) for x in v)
    return False


def explicit_command(kind: str, title: str, params: dict[str, Any]) -> str:
    """`labdeck run` passing every parameter: reproduces the run with no preset and no defaults."""
    argv = ["labdeck", "run", "--kind", kind, "--title", title]
    for key, value in flatten(params).items():
        argv += ["--set", f"{key}={toml_value(value)}"]
    return shlex.join(argv)


def write_preset(
    path: Path, kind: str, title: str, description: str, params: dict[str, Any]
) -> Path:
    path = Path(path)
    doc = {"kind": kind, "title": title, "description": description, "params": _drop_none(params)}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(tomli_w.dumps(doc), encoding="utf-8")
    return path


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    """TOML cannot hold None; a None leaf is left out and falls back to the kind default."""
    return {k: _drop_none(v) if isinstance(v, dict) else v for k, v in d.items() if v is not None}


# --------------------------------------------------------------------------- schema table


@dataclass
class ParamRow:
    name: str
    type: str
    default: Any
    bounds: str
    description: str


def _type_name(annotation: Any) -> str:
    text = (
        getattr(annotation, "__name__", None) if not getattr(annotation, "__args__", None) else None
    )
    return text or str(annotation).replace("typing.", "")


def _bounds(metadata: list[Any]) -> str:
    parts = []
    for m in metadata:
        for attr, sym in (
            ("ge", ">="),
            ("gt", ">"),
            ("le", "<="),
            ("lt", "<"),
            ("min_length", "len>="),
            ("max_length", "len<="),
        ):
            val = getattr(m, attr, None)
            if val is not None:
                parts.append(f"{sym}{val}")
    return " ".join(parts)


def schema_rows(kind: str) -> list[ParamRow]:
    """One row per leaf parameter (nested models as dotted names): `params KIND` and the launch form."""
    return _rows(kind_config(kind).Params, "")


def _rows(cls: type[BaseModel], prefix: str) -> list[ParamRow]:
    rows: list[ParamRow] = []
    defaults = cls().model_dump(mode="json")
    for name, f in cls.model_fields.items():
        ann = f.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            rows += _rows(ann, f"{prefix}{name}.")
            continue
        rows.append(
            ParamRow(
                name=f"{prefix}{name}",
                type=_type_name(ann),
                default=defaults.get(name),
                bounds=_bounds(f.metadata),
                description=f.description or "",
            )
        )
    return rows
