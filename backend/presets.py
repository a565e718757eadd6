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
import os
import re
import shlex
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w
from pydantic import BaseModel, ValidationError

from .errors import UserError, clip, one_line, shorten
from .inputs import ResolvedInput, check_inputs
from .jsonio import canonical_json
from .kinds import kind_config, kind_names
from .kinds.base import preflight_hook
from .runs import default_results_dir
from .secrets import refuse_secret_values
from .validation_errors import blame, describe_error, flatten, refuse_non_finite

PRESET_KEYS = ("kind", "title", "description", "extends", "params", "grid", "launcher")
NULL = "null"  # TOML has no null; `--set key=null` means None
MAX_PRESET_BYTES = 1 << 20  # presets are hand-written; a bigger file is a mistake
MAX_DEPTH = 32  # nesting of tables/arrays; far beyond any kind's schema
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


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


def _read_preset_text(path: Path, where: str) -> str:
    """The preset's text: a regular file of at most MAX_PRESET_BYTES, decoded as UTF-8.

    Anything else (a device such as /dev/zero, a FIFO, a folder, a huge or binary file,
    another encoding) is one clear line instead of a hang, a traceback or a memory blow-up.
    """
    try:
        st = path.stat()
    except FileNotFoundError:
        raise UserError(f"{path}: preset file not found{where}") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"{clip(str(path))}: cannot read preset ({_reason(exc)}){where}") from None
    if not stat.S_ISREG(st.st_mode):
        raise UserError(f"{path}: not a regular file{where}; a preset is a TOML text file")
    if st.st_size > MAX_PRESET_BYTES:
        raise UserError(
            f"{path}: {st.st_size} bytes{where}; a preset is at most {MAX_PRESET_BYTES} bytes"
        )
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_PRESET_BYTES + 1)
    except OSError as exc:
        raise UserError(f"{path}: cannot read preset ({_reason(exc)}){where}") from None
    if len(data) > MAX_PRESET_BYTES:  # grew since stat
        raise UserError(f"{path}: larger than {MAX_PRESET_BYTES} bytes{where}")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise UserError(f"{path}: UTF-16 text{where}; save the preset as UTF-8")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(
            f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}){where}; "
            "a preset is a UTF-8 TOML file"
        ) from None


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc)


def toml_error(exc: BaseException, text: str) -> str:
    """tomllib's message, plus the key a duplicate names (tomllib gives only line/column)."""
    msg = str(exc)
    if isinstance(exc, RecursionError):
        return f"nesting too deep (at most {MAX_DEPTH} levels of tables/arrays)"
    if not isinstance(exc, tomllib.TOMLDecodeError):  # e.g. an integer with >4300 digits
        return f"invalid value ({one_line(msg, 120)})"
    m = re.search(r"at line (\d+), column \d+", msg)
    if m and msg.startswith("Cannot overwrite a value"):
        lines = text.splitlines()
        n = int(m.group(1))
        key = lines[n - 1].split("=", 1)[0].strip() if 0 < n <= len(lines) else ""
        table = next(
            (
                ln.strip().strip("[]").strip()
                for ln in reversed(lines[: max(n - 1, 0)])
                if ln.strip().startswith("[")
            ),
            "",
        )
        name = f"{table}.{key}" if table and key else key
        if name:
            return f"duplicate key {clip(name)} (line {n}): a key may be given once"
    return msg


def depth(value: Any, limit: int = MAX_DEPTH) -> int:
    """Nesting depth of tables/arrays, counted iteratively (no recursion to overflow)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        node, d = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, d + 1)
            if deepest > limit:
                return deepest
            stack.extend((x, d + 1) for x in (node.values() if isinstance(node, dict) else node))
    return deepest


def parse_toml(text: str) -> dict[str, Any]:
    """`tomllib.loads` whose every failure is a TOMLDecodeError-like ValueError, and depth-bounded."""
    try:
        data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError, ValueError) as exc:
        raise ValueError(toml_error(exc, text)) from None
    if depth(data) > MAX_DEPTH:
        raise ValueError(f"nesting too deep (at most {MAX_DEPTH} levels of tables/arrays)")
    return data


def _read_toml(path: Path, referrer: Path | None = None) -> tuple[dict[str, Any], str]:
    where = f" (extended by {referrer})" if referrer else ""
    text = _read_preset_text(path, where)
    try:
        data = parse_toml(text)
    except ValueError as exc:
        raise UserError(f"{path}: malformed TOML: {exc}{where}") from None
    unknown = sorted(set(data) - set(PRESET_KEYS))
    if unknown:
        raise UserError(
            f"{path}: unknown top-level key {clip(unknown[0])}; expected one of: {', '.join(PRESET_KEYS)}"
        )
    for table in ("params", "grid", "launcher"):
        if table in data and not isinstance(data[table], dict):
            raise UserError(
                f"{path}: {table!r} must be a table ([{table}]), got {type(data[table]).__name__}"
            )
    for key in ("kind", "title", "description", "extends"):
        if key in data and not isinstance(data[key], str):
            raise UserError(f"{path}: {key!r} must be a string, got {clip(data[key])}")
    if "extends" in data and (not data["extends"].strip() or _CONTROL.search(data["extends"])):
        raise UserError(f"{path}: 'extends' must name a preset file, got {clip(data['extends'])}")
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


def _absolute(path: Path) -> Path:
    """`path.resolve()`, or its plain absolute form when resolving fails (a symlink loop)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError, ValueError):
        return Path(os.path.abspath(path))


def load_preset(path: Path | str) -> Preset:
    """Read a preset, following `extends` (relative to the file that names it)."""
    path = Path(path)
    seen: list[Path] = []
    layers: list[dict[str, Any]] = []
    current, referrer = path, None
    top_text = ""
    while True:
        resolved = _absolute(current)
        if resolved in seen:
            raise UserError(
                f"{current}: 'extends' cycle ({' -> '.join(str(p) for p in [*seen, resolved])})"
            )
        seen.append(resolved)
        data, text = _read_toml(current, referrer)
        if referrer is None:
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
            f"{path}: kind: unknown kind {clip(merged['kind'])}; expected one of: {', '.join(kind_names())}"
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


def parse_value(text: str, key: str | None = None, flag: str = "--set") -> Any:
    """A value in TOML syntax (`0.1`, `[1, 2]`, `true`, `"x"`); a bare word is a string.

    `key` names the `--set` (or other `flag`) the value came from, so an error says
    which one is wrong.
    """
    where = f"{flag} {key}={shorten(text, 40)}" if key else f"{flag} value {clip(text, 40)}"
    if text == NULL:
        return None
    if not text.strip():
        hint = f' (write {key}="" for an empty string)' if key else ""
        raise UserError(f"{where}: empty value; expected a TOML value{hint}")
    try:
        doc = parse_toml(f"v = {text}")
    except ValueError as exc:
        problem = str(exc)
        if text[:1] not in "[{\"'" and not problem.startswith("nesting"):
            return text
        if problem.startswith("nesting"):
            raise UserError(f"{where}: {problem}") from None
    else:
        if set(doc) != {"v"}:
            raise UserError(f"{where}: one value expected, got more than one line of TOML")
        return doc["v"]
    try:  # containers holding null are written as JSON (TOML has no null)
        value = json.loads(text)
    except (ValueError, RecursionError):
        raise UserError(f"{where}: malformed TOML value ({problem})") from None
    if depth(value) > MAX_DEPTH:
        raise UserError(f"{where}: nesting too deep (at most {MAX_DEPTH} levels)")
    return value


def parse_set(item: str, flag: str = "--set") -> tuple[list[str], Any]:
    if "=" not in item:
        raise UserError(
            f"{flag} {clip(item)}: expected key=value (TOML value syntax, dotted keys for nesting)"
        )
    key, _, raw = item.partition("=")
    parts = [p.strip() for p in key.strip().split(".")]
    if not all(parts):
        raise UserError(f"{flag} {clip(item)}: empty key")
    return parts, parse_value(raw.strip(), ".".join(parts), flag)


def apply_sets(params: dict[str, Any], sets: list[str], flag: str = "--set") -> dict[str, Any]:
    out = copy.deepcopy(params)
    for item in sets:
        parts, value = parse_set(item, flag)
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
    inputs: dict[str, ResolvedInput] = field(default_factory=dict)

    @property
    def md5(self) -> str:
        return params_md5(self.params)


def params_md5(params: dict[str, Any]) -> str:
    return hashlib.md5(canonical_json(params).encode("utf-8")).hexdigest()


def defaults_of(kind: str) -> dict[str, Any]:
    return kind_config(kind).Params().model_dump(mode="json")


def resolve(
    kind: str,
    raw: dict[str, Any],
    sets: list[str] | None = None,
    source: str = "params",
    results: Path | None = None,
    flags: Mapping[str, str] | None = None,
) -> Resolved:
    """Validate `raw` (+ `--set` overrides) against the kind's schema: the explicit parameter set.

    `flags` names the flag that set some of the `sets` keys when it was not `--set`
    (a grid member's coordinates: `--grid`), so an error blames the flag the user typed.

    Input files and run references (in `results`) are checked here too, and then the
    kind's own `preflight` (devices, dataset contents), so everything knowable before
    loading weights fails before a run directory exists.
    """
    cfg = kind_config(kind)
    sets = sets or []
    merged = apply_sets(raw, sets)
    set_keys = {".".join(parse_set(s)[0]) for s in sets}
    try:
        # Strict: a TOML bool is a bool and an int an int; "yes" is no bool, `true` no
        # epoch count, 3.5 no int. (Ints still pass where a float is expected.)
        model = cfg.Params.model_validate(merged, strict=True)
    except ValidationError as exc:
        raise UserError(
            describe_error(exc.errors()[0], source, set_keys, cfg.Params, flags)
        ) from None
    refuse_non_finite(model.model_dump(), source, set_keys, flags)
    params = model.model_dump(mode="json")
    defaults = defaults_of(kind)
    flat_p, flat_d = flatten(params), flatten(defaults)
    refuse_secret_values(flat_p, source)
    overrides = {k: v for k, v in flat_p.items() if flat_d.get(k, object()) != v}
    inputs = check_inputs(
        model,
        results or default_results_dir(),
        lambda name: f"{blame(name.split('[')[0], source, set_keys, flags)}: params.{name}",
    )
    preflight = preflight_hook(cfg)
    if preflight is not None:
        preflight(model, lambda name: f"{blame(name, source, set_keys, flags)}: params.{name}")
    return Resolved(kind, model, params, defaults, overrides, inputs)


# --------------------------------------------------------------------------- text forms


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
