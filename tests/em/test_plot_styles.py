"""The seed's four-curve picture (persona × reflection) is styled by the kind's declared
axes — reflection by colour, persona by marker and line — whatever order the runs are
given in, as runs or as a grid group; rates are drawn in percent with their intervals."""

from __future__ import annotations

import json
from pathlib import Path

from labdeck.backend.groups import Group
from labdeck.backend.kinds.em.config import STYLING, Params
from labdeck.backend.reports import group_styles, plot_group, plot_runs, run_styles, style_keys
from labdeck.backend.runs import Run

PERSONA = "run:123456/adapter"
SEED_STYLES = {
    (False, "baseline"): ("tab:blue", "o", "-"),  # baseline: blue circles, solid
    (True, "baseline"): ("tab:red", "o", "-"),  # with reflection: red circles, solid
    (False, PERSONA): ("tab:blue", "s", ":"),  # persona: blue squares, dotted
    (True, PERSONA): ("tab:red", "s", ":"),  # persona + reflection: red squares, dotted
}


def _fake_run(results: Path, name: str, rates: list[float], coords: dict, **params) -> Run:
    path = results / name
    path.mkdir()
    full = Params(**params).model_dump(mode="json")
    group = {"id": "g123456", "axes": {}, "coords": coords, "index": 0, "size": 4}
    config = {"kind": "em", "params": full, "group": group, "primary_metric": "misaligned_rate"}
    (path / "config.json").write_text(json.dumps(config), encoding="utf-8")
    events = []
    for i, r in enumerate(rates):
        for metric, value in (
            ("misaligned_rate", r),
            ("misaligned_rate_ci_low", max(0.0, r - 0.05)),
            ("misaligned_rate_ci_high", r + 0.05),
        ):
            events.append({"t": i, "seq": len(events), "type": "metric", "name": metric,
                           "value": value, "step": 25 * i})  # fmt: skip
    # a resumed run repeats an event: the latest value counts, once
    events.append({**events[-3], "seq": 99})
    (path / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    return Run(path)


def _variants(tmp_path: Path) -> list[Run]:
    out = []
    for i, (refl, persona) in enumerate(SEED_STYLES):
        coords = {"with_reflection": refl, "persona": persona}
        out.append(_fake_run(tmp_path, f"r{i}", [0.0, 0.1 / (i + 1)], coords, **coords))
    return out


def _key(run: Run) -> tuple:
    p = run.config["params"]
    return (p["with_reflection"], p["persona"])


def test_styles_follow_values_in_any_argument_order(tmp_path: Path):
    assert (STYLING.color, STYLING.marker) == ("with_reflection", "persona")
    runs = _variants(tmp_path)
    for order in (runs, runs[::-1], [runs[2], runs[0], runs[3], runs[1]]):
        assert style_keys(order)[:2] == ["with_reflection", "persona"]
        got = {
            _key(r): (s["color"], s["marker"], s["linestyle"])
            for r, s in zip(order, run_styles(order, style_keys(order)), strict=True)
        }
        assert got == SEED_STYLES
    # three variants without the baseline: the persona still has squares, reflection red
    three = [runs[3], runs[1], runs[2]]
    styled = run_styles(three, style_keys(three))
    assert [(s["color"], s["marker"]) for s in styled] == [
        ("tab:red", "s"), ("tab:red", "o"), ("tab:blue", "s"),
    ]  # fmt: skip


def test_group_overlay_uses_the_same_styles(tmp_path: Path):
    runs = _variants(tmp_path)
    for order in (runs, runs[::-1]):
        coords = [r.config["group"]["coords"] for r in order]
        # a grid that lists persona first still colours by reflection
        coords = [
            {"persona": c["persona"], "with_reflection": c["with_reflection"]} for c in coords
        ]
        color, style, styles = group_styles(coords, None, None, "em")
        assert (color, style) == ("with_reflection", "persona")
        got = {
            (c["with_reflection"], c["persona"]): (s["color"], s["marker"], s["linestyle"])
            for c, s in zip(coords, styles, strict=True)
        }
        assert got == SEED_STYLES
    group = Group("g123456", {}, members=runs[::-1])
    png = plot_group(group, tmp_path / "group")
    assert png.stat().st_size > 5000


def test_overlay_png_is_the_same_picture_in_any_order(tmp_path: Path):
    runs = _variants(tmp_path)
    written = plot_runs(runs, tmp_path / "a")
    assert [p.name for p in written] == ["compare_misaligned_rate.png"]
    assert written[0].stat().st_size > 5000
    other = plot_runs([runs[2], runs[0], runs[3], runs[1]], tmp_path / "b")
    assert other[0].read_bytes() == written[0].read_bytes()
