"""A property-based fuzzer of validation: every kind's shipped presets, mutated, and `--set`.

Property: validation either accepts, or raises `UserError` with a one-line message of
bounded length: never another exception, never a hang. What it accepts round-trips:
the explicit command config.json records resolves to the same parameters and md5.

The search is derandomized and keeps no example database, so CI sees the same cases
every time; the bounded example counts keep it to a few seconds on two cores.
"""

from __future__ import annotations

import contextlib
import math
import os
import shlex
import signal
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labdeck.backend.errors import MAX_MESSAGE, UserError
from labdeck.backend.kinds import kind_names
from labdeck.backend.presets import (
    explicit_command,
    load_preset,
    resolve,
    schema_rows,
    toml_value,
)

ROOT = Path(__file__).resolve().parents[2]
PRESETS = sorted((ROOT / "presets").glob("*.toml"))
KINDS = list(kind_names())
HANG_SECONDS = 20  # validation answers in milliseconds; this long is a hang

FUZZ = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# Values that once broke something, or that sit on a boundary of TOML or of Python.
NASTY_TEXT = [
    "",
    " ",
    "[",
    "{",
    '"',
    "'",
    '"unterminated',
    "[0.0,",
    "nan",
    "inf",
    "-inf",
    "[nan, 0.1]",
    "[0, inf]",
    "[0, 1e308]",
    "1e308",
    "1e309",
    "-0.0",
    "0x10",
    "1_000",
    "18446744073709551616",
    "9" * 5000,
    "true",
    "null",
    "[null]",
    "{a = 1}",
    '{"a": [1, {"b": null}]}',
    "[" * 60 + "]" * 60,
    "{a = " * 40 + "1" + "}" * 40,
    "a\x00b",
    "a\x07b",
    "\x1b[31m",
    '"\\u0000"',
    "~no-such-user-here/x",
    "/dev/zero",
    "/proc/self/mem",
    "./no/such/thing",
    "models/nowhere",
    "run:999999",
    "run:",
    "x" * 5000,
    "é\u202e",
    "org/name",
    "smollm2-135m",
    "1\nextra = 2",
    "[" + ", ".join(["0.5"] * 3000) + "]",
]

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(min_size=1, max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)


def _as_text(v: Any) -> str:
    try:
        return toml_value(v)
    except (TypeError, ValueError):
        return str(v)


set_text = st.one_of(st.sampled_from(NASTY_TEXT), values.map(_as_text), st.text(max_size=40))

# Values aimed at one parameter: its own default pushed past every edge of its type.
EDGE_NUMBERS: list[Any] = [
    math.nan,
    math.inf,
    -math.inf,
    1e308,
    -1e308,
    5e-324,
    -0.0,
    -1,
    0,
    2**31,
    2**32,
    2**63,
    2**64,
    10**30,
    True,
]
EDGE_STRINGS = ["", "a\x00b", "a\nb", "\x1b[2J", "/no/such/file", "./nope", "~/nope", "x" * 300]


def edge_values(default: Any) -> st.SearchStrategy[Any]:
    """Values shaped like `default` but at or past the edges of what it may be."""
    if isinstance(default, list):
        item = default[0] if default else 0.0
        return st.one_of(
            st.lists(edge_values(item), min_size=1, max_size=4).map(lambda x: [*default, *x]),
            st.just([]),
            st.just([item] * 2),
            st.just([item] * 3000),
        )
    if isinstance(default, bool):
        return st.sampled_from([True, False, 0, 1, "yes"])
    if isinstance(default, int | float):
        return st.one_of(
            st.sampled_from(EDGE_NUMBERS),
            st.floats(allow_nan=False, allow_infinity=False).map(lambda x: default + x),
            st.integers(-(2**66), 2**66),
        )
    if isinstance(default, str):
        return st.one_of(st.sampled_from(EDGE_STRINGS), st.text(max_size=20))
    return values


def key_and_value(kind: str) -> st.SearchStrategy[tuple[str, str]]:
    """A `--set key=value` aimed at a real parameter (edge values) or anything (nasty text)."""
    rows = schema_rows(kind)
    aimed = st.sampled_from(rows).flatmap(
        lambda r: edge_values(r.default).map(lambda v: (r.name, _as_text(v)))
    )
    anything = st.tuples(st.sampled_from(_keys(kind)), set_text)
    return st.one_of(aimed, aimed, anything)


def _keys(kind: str) -> list[str]:
    names = [r.name for r in schema_rows(kind)]
    tables = sorted({n.rsplit(".", 1)[0] for n in names if "." in n})
    return names + tables + ["nope", "a.b.c", f"{names[0]}.x", "levels.0", ""]


@contextlib.contextmanager
def no_hang(seconds: int = HANG_SECONDS) -> Iterator[None]:
    def _raise(*_: Any) -> None:
        raise TimeoutError(f"validation still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, _raise)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def assert_one_line(exc: UserError) -> None:
    text = str(exc)
    assert text and "\n" not in text and "\r" not in text, text
    assert len(text) <= MAX_MESSAGE, len(text)


def assert_round_trips(kind: str, params: dict[str, Any], md5: str, results: Path) -> None:
    """config.json's `commands.run_explicit` resolves, from nothing else, to the same run."""
    argv = shlex.split(explicit_command(kind, "fuzz", params))
    sets = [argv[i + 1] for i, a in enumerate(argv) if a == "--set"]
    again = resolve(kind, {}, sets, source="run_explicit", results=results)
    assert again.params == params
    assert again.md5 == md5
    assert all(not isinstance(v, float) or math.isfinite(v) for v in _leaves(params)), (
        "a non-finite value was accepted"
    )


def _leaves(v: Any) -> Iterator[Any]:
    if isinstance(v, dict):
        for x in v.values():
            yield from _leaves(x)
    elif isinstance(v, list):
        for x in v:
            yield from _leaves(x)
    else:
        yield v


def check(kind: str, raw: dict[str, Any], sets: list[str], results: Path, source: str) -> None:
    with no_hang():
        try:
            resolved = resolve(kind, raw, sets, source=source, results=results)
        except UserError as exc:
            assert_one_line(exc)
            return
        assert_round_trips(kind, resolved.params, resolved.md5, results)


# --------------------------------------------------------------------------- --set


@FUZZ
@given(data=st.data())
def test_set_values_validate_or_fail_in_one_line(data: st.DataObject, tmp_path: Path) -> None:
    kind = data.draw(st.sampled_from(KINDS), label="kind")
    pairs = data.draw(st.lists(key_and_value(kind), min_size=1, max_size=3), label="sets")
    sets = [f"{k}={v}" for k, v in pairs]
    if data.draw(st.booleans(), label="malformed item"):
        sets.append(data.draw(st.sampled_from(["novalue", "=1", ".x=1", "a..b=1"])))
    check(kind, {}, sets, tmp_path / "results", f"--kind {kind}")


# --------------------------------------------------------------------------- preset files


def _special(tmp: Path) -> list[str]:
    fifo = tmp / "fifo"
    if not fifo.exists():
        os.mkfifo(fifo)
    loop = tmp / "loop.toml"
    if not loop.is_symlink():
        loop.symlink_to(loop)
    binary = tmp / "binary.toml"
    binary.write_bytes(bytes(range(256)))
    return [
        "/dev/zero",
        "/dev/null",
        "/dev/urandom",
        "/proc/self/mem",
        "/proc/self/status",
        str(fifo),
        str(loop),
        str(binary),
        str(tmp),
        "missing.toml",
        "x" * 5000,
    ]


mutations = st.sampled_from(
    [
        "set-param",
        "drop-param",
        "unknown-param",
        "set-top",
        "encode",
        "insert-bytes",
        "truncate",
        "deep",
        "extends",
        "duplicate-line",
    ]
)


def _mutated_preset(data: st.DataObject, source: Path, tmp: Path) -> bytes:
    text = source.read_text(encoding="utf-8")
    doc = tomllib.loads(text)
    kind = doc.get("kind", "smoke")  # the schema to draw keys from, whatever `kind` becomes
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        op = data.draw(mutations, label="op")
        params = doc.setdefault("params", {})
        if op in ("set-param", "drop-param", "unknown-param") and isinstance(params, dict):
            keys = [r.name.split(".")[0] for r in schema_rows(kind)]
            key = data.draw(st.sampled_from([*keys, "zzz"]), label="key")
            if op == "drop-param":
                params.pop(key, None)
            else:
                params[key if op == "set-param" else f"{key}_x"] = data.draw(values, label="value")
        elif op == "set-top":
            top = data.draw(st.sampled_from(["kind", "title", "extends", "params", "other"]))
            doc[top] = data.draw(values, label="top value")
        elif op == "extends":
            doc["extends"] = data.draw(st.sampled_from(_special(tmp)), label="extends")
        else:
            break  # byte-level mutations below apply to the written text
    else:
        op = ""
    try:
        body = tomli_w.dumps(_no_none(doc)).encode("utf-8")
    except (TypeError, ValueError):
        body = text.encode("utf-8")
    if op == "encode":
        enc = data.draw(st.sampled_from(["utf-16", "utf-16-be", "utf-32", "latin-1", "cp1252"]))
        body = body.decode("utf-8").replace("Gemma", "Gémma").encode(enc, errors="replace")
    elif op == "insert-bytes":
        at = data.draw(st.integers(0, len(body)), label="at")
        body = body[:at] + data.draw(st.binary(min_size=1, max_size=8), label="bytes") + body[at:]
    elif op == "truncate":
        body = body[: data.draw(st.integers(0, len(body)), label="cut")]
    elif op == "deep":
        n = data.draw(st.integers(20, 3000), label="depth")
        body += b"\n[params.deep]\nv = " + b"[" * n + b"]" * n + b"\n"
    elif op == "duplicate-line":
        lines = body.splitlines(keepends=True)
        i = data.draw(st.integers(0, max(len(lines) - 1, 0)), label="line")
        body = b"".join(lines[: i + 1] + lines[i : i + 1] + lines[i + 1 :])
    return body


def _no_none(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _no_none(x) for k, x in v.items() if x is not None}
    if isinstance(v, list):
        return [_no_none(x) for x in v if x is not None]
    return v


@pytest.mark.parametrize("preset", PRESETS, ids=[p.name for p in PRESETS])
@settings(FUZZ, max_examples=25)
@given(data=st.data())
def test_mutated_presets_validate_or_fail_in_one_line(
    preset: Path, data: st.DataObject, tmp_path: Path
) -> None:
    body = _mutated_preset(data, preset, tmp_path)
    path = tmp_path / "fuzzed.toml"
    path.write_bytes(body)
    sets = data.draw(st.lists(st.sampled_from(NASTY_TEXT), max_size=1), label="set values")
    with no_hang():
        try:
            pr = load_preset(path)
        except UserError as exc:
            assert_one_line(exc)
            return
    set_items = [f"{data.draw(st.sampled_from(_keys(pr.kind)), label='set key')}={v}" for v in sets]
    check(pr.kind, pr.params, set_items, tmp_path / "results", str(path))


# --------------------------------------------------------------------------- the real command line


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--kind", "degradation", "--set", "levels=[0, 1e308]"], "mult_gauss levels are in"),
        (["--kind", "kt", "--set", "seed=18446744073709551616"], "--set seed: params.seed"),
        (["--kind", "smoke", "--set", 'model="bad\\u0007name"'], "control character"),
    ],
)
def test_command_line_refuses_in_one_line_and_creates_nothing(lab, tmp_path, args, fragment):
    results = tmp_path / "results"
    proc = lab("run", *args, "--results", str(results), timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("labdeck: error: ") and fragment in lines[0]
    assert not results.exists() or not any(results.iterdir())
