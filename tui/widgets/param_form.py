"""A form generated from a kind's parameter schema (`labdeck.backend.presets.schema_rows`).

One field per leaf parameter (nested ones by dotted name): a switch for bools, a
select for Literal choices, otherwise an input holding the value in TOML syntax
(the same syntax as `--set`), so what the form sends is exactly a `--set` list.
Validation is the backend's own `resolve`, so the form and the CLI never disagree.
"""

from __future__ import annotations

from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.css.query import NoMatches
from textual.markup import escape
from textual.message import Message
from textual.widgets import Input, Label, Select, Static, Switch

from labdeck.backend.errors import UserError
from labdeck.backend.param_words import human_bounds, human_type, literal_choices
from labdeck.backend.presets import ParamRow, parse_value, toml_value


def _field_id(name: str) -> str:
    return "p-" + name.replace(".", "__")


class ParamField(Vertical):
    """Label (name, type, bounds), the editor, the description, and an inline error line."""

    def __init__(self, row: ParamRow, value: Any) -> None:
        super().__init__(classes="field", id=_field_id(row.name))
        self.row = row
        self.initial = value
        self.choices = literal_choices(row.type)

    def compose(self) -> ComposeResult:
        r = self.row
        words = human_type(r.type)
        bounds = human_bounds(r.bounds, r.type) if r.bounds else ""
        described = ", ".join(x for x in (words, bounds) if x)
        yield Label(
            f"[b]{escape(r.name)}[/b]  [dim]{escape(described)}[/dim]", classes="field-label"
        )
        if r.type == "bool":
            with Horizontal(classes="switch-row"):
                yield Switch(value=bool(self.initial))
                yield Static(self._switch_text(bool(self.initial)), classes="switch-state")
        elif self.choices is not None:
            yield Select(
                [(str(c), c) for c in self.choices],
                value=self.initial if self.initial in self.choices else Select.NULL,
                allow_blank=self.initial not in self.choices,
            )
        else:
            yield Input(self._text(self.initial))
        default = (
            f"  [dim](default {escape(toml_value(r.default))})[/dim]"
            if r.default is not None
            else ""
        )
        yield Static(f"{escape(r.description)}{default}", classes="field-help")
        yield Static("", classes="field-error", markup=False)

    @staticmethod
    def _switch_text(on: bool) -> str:
        return "[b $success]on[/]" if on else "[dim]off[/dim]"

    @on(Switch.Changed)
    def _switch_changed(self, event: Switch.Changed) -> None:
        self.query_one(".switch-state", Static).update(self._switch_text(event.value))

    def _text(self, value: Any) -> str:
        if self.row.type == "str" and isinstance(value, str):
            return value
        return toml_value(value)

    def value(self) -> Any:
        """The edited value; raises UserError when the text is not a value at all. A field
        whose editor is not composed yet (the form is being rebuilt for another preset)
        has not been edited: its value is the one it was made with."""
        try:
            if self.row.type == "bool":
                return self.query_one(Switch).value
            if self.choices is not None:
                v = self.query_one(Select).value
                return None if v is Select.NULL else v
            text = self.query_one(Input).value.strip()
        except NoMatches:
            return self.initial
        if self.row.type == "str":
            return text
        return parse_value(text)

    def set_error(self, message: str | None) -> None:
        try:
            self.query_one(".field-error", Static).update(message or "")
        except NoMatches:  # not composed yet; the next validation shows it
            return
        self.set_class(bool(message), "-invalid")


class ParamForm(VerticalScroll):
    """Posts `ParamForm.Edited` on every change; `overrides()` gives the --set list."""

    class Edited(Message):
        pass

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.fields: dict[str, ParamField] = {}

    async def load(self, rows: list[ParamRow], values: dict[str, Any]) -> None:
        fields = {r.name: ParamField(r, values.get(r.name, r.default)) for r in rows}
        await self.remove_children()
        self.fields = fields
        await self.mount_all(fields.values())

    def focus_first(self) -> None:
        """Focus the first field's editor (Enter on a preset lands here)."""
        for f in self.fields.values():
            for widget in f.query("Input, Switch, Select"):
                if widget.focusable:
                    self.screen.set_focus(widget)
                    return

    def overrides(self) -> tuple[dict[str, tuple[Any, Any]], dict[str, str]]:
        """(changed: name → (preset value, new value), errors: name → message)."""
        changed: dict[str, tuple[Any, Any]] = {}
        errors: dict[str, str] = {}
        for name, f in self.fields.items():
            try:
                v = f.value()
            except UserError as exc:
                errors[name] = str(exc).replace("--set value", "value")
                continue
            if v != f.initial:
                changed[name] = (f.initial, v)
        return changed, errors

    def show_errors(self, errors: dict[str, str]) -> None:
        for name, f in self.fields.items():
            f.set_error(errors.get(name))

    @on(Input.Changed)
    @on(Switch.Changed)
    @on(Select.Changed)
    def _edited(self, event: Message) -> None:
        event.stop()
        self.post_message(self.Edited())
