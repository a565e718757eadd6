"""`labdeck plot RUN RUN RUN RUN` styles runs by the parameters that differ: the seed's
four-curve picture for the persona × reflection variants."""

from __future__ import annotations

import json
from pathlib import Path

from labdeck.backend.kinds.em.config import STYLE_KEYS, Params
from labdeck.backend.reports import differing_params, plot_runs, run_styles
from labdeck.backend.runs import Run


def _fake_run(results: Path, name: str, rates: list[float], **params) -> Run:
    path = results / name
    path.mkdir()
    full = Params(**params).model_dump(mode="json")
    (path / "config.json").write_text(json.dumps({"kind": "em", "params": full}), encoding="utf-8")
    events = [
        {"t": i, "seq": i, "type": "metric", "name": "misaligned_rate", "value": r, "step": 25 * i}
        for i, r in enumerate(rates)
    ]
    # a resumed run repeats an event: the latest value counts, once
    events.append({**events[-1], "seq": 99, "value": rates[-1]})
    (path / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    return Run(path)


def test_four_variants_get_the_seeds_styles(tmp_path: Path):
    persona = "run:123456/adapter"
    runs = [
        _fake_run(tmp_path, "a", [0.0, 0.1, 0.2]),
        _fake_run(tmp_path, "b", [0.0, 0.05, 0.1], with_reflection=True),
        _fake_run(tmp_path, "c", [0.0, 0.02, 0.05], persona=persona),
        _fake_run(tmp_path, "d", [0.0, 0.01, 0.02], persona=persona, with_reflection=True),
    ]
    keys = differing_params(runs, STYLE_KEYS)
    assert keys == ["with_reflection", "persona"]
    styles = [(s["color"], s["marker"], s["linestyle"]) for s in run_styles(runs, keys)]
    assert styles == [
        ("tab:blue", "o", "-"),  # baseline: blue circles, solid
        ("tab:red", "o", "-"),  # with reflection: red circles, solid
        ("tab:blue", "s", ":"),  # persona: blue squares, dotted
        ("tab:red", "s", ":"),  # persona + reflection: red squares, dotted
    ]
    written = plot_runs(runs, tmp_path / "out")
    assert [p.name for p in written] == ["compare_misaligned_rate.png"]
    assert written[0].stat().st_size > 5000
