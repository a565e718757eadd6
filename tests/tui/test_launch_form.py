"""The launch form reads as a researcher writes: types in words, a visible switch state,
the title beside its label, one line per preset, whole panel titles, buttons inside
their panel, and at 80x24 the overrides, grid and estimate panels one key away."""

from __future__ import annotations

import pytest
from textual.widgets import Button, Input, Label, OptionList, Static

from labdeck.backend.param_words import human_bounds, human_type
from labdeck.tui.screens.launch import LaunchScreen
from labdeck.tui.widgets.param_form import ParamForm


def test_types_and_bounds_in_words():
    assert human_type("Literal['auto', 'float32', 'bfloat16']") == "one of auto, float32, bfloat16"
    assert human_type("str") == "text" and human_bounds("len>=1", "str") == "not empty"
    assert human_type("int | None") == "whole number or none"
    assert human_type("list[Literal['attention', 'mlp']]") == "list of: attention, mlp"
    assert human_bounds(">=0 <=1024", "int") == "0 to 1024"
    assert human_bounds(">0.0 <1.0", "float") == "above 0, below 1"
    assert human_bounds("len>=1 len<=1000", "list[float]") == "at least 1 item, up to 1000 items"


async def _form(pilot, preset: str) -> LaunchScreen:
    app = pilot.app
    await pilot.press("l")
    for _ in range(60):
        await pilot.pause(0.05)
        if isinstance(app.screen, LaunchScreen) and app.screen.source is not None:
            break
    screen = app.screen
    presets = screen.query_one("#presets", OptionList)
    wanted = next(
        i
        for i in range(presets.option_count)
        if presets.get_option_at_index(i).id == f"kind:{preset}"
    )
    presets.highlighted = wanted
    for _ in range(60):
        await pilot.pause(0.05)
        if screen.source is not None and screen.source.kind == preset and screen._valid:
            return screen
    raise AssertionError("the form did not load")


def _inside(inner, outer) -> bool:
    a, b = inner.region, outer.region
    return a.x >= b.x and a.right <= b.right and a.y >= b.y and a.bottom <= b.bottom


@pytest.mark.parametrize("size", [(120, 40), (80, 24)])
async def test_form_layout(fixture_dir, make_app, size):
    app = make_app(gpu_interval=0)
    async with app.run_test(size=size) as pilot:
        screen = await _form(pilot, "degradation")
        form = screen.query_one(ParamForm)
        await pilot.pause(0.3)
        labels = " ".join(str(lb.render()) for lb in form.query(Label))
        assert form.query(Label), "no labels"
        assert "Literal[" not in labels and "len>=" not in labels
        assert "one of auto, float32" in labels and "text, not empty" in labels
        switch = form.fields["load_4bit"]
        assert str(switch.query_one(".switch-state", Static).render()) == "off"
        row = screen.query_one("#title-row")
        title_label, title_input = row.query_one(Label), row.query_one(Input)
        assert title_label.region.y == title_input.region.y  # beside, not above
        presets = screen.query_one("#presets", OptionList)
        for i in range(presets.option_count):
            assert "\n" not in str(presets.get_option_at_index(i).prompt)
        assert screen.query_one("#grid").border_title == "grid"
        if size[0] < 100:
            assert (
                not screen.query_one("#side-col").display
                or not screen.query_one("#estimate").region.width
            )
            await pilot.press("ctrl+o")
            await pilot.pause(0.2)
        side = screen.query_one("#side-col")
        assert screen.query_one("#estimate").region.width > 0  # reachable
        for button in screen.query(Button):
            assert button.region.width > len(str(button.label)) - 1
            assert _inside(button, side), button.id
        if size[0] < 100:
            await pilot.press("ctrl+o")
            await pilot.pause(0.2)
            assert form.region.width > 0 and screen.query_one("#estimate").region.width == 0
