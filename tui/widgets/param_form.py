"""A form generated from a kind's parameter schema (`labdeck.backend.presets.schema_rows`).

One field per leaf parameter (nested ones by dotted name): a switch for bools, a
select for Literal choices, otherwise an input holding the value in TOML syntax
(the same syntax as `--set`), so what the form sends is exactly a `--set` list.
Validation is the backend's own `resolve`, so the form and the CLI never disagree.
"""

from __future__ import annotations

import ast
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.css.query import NoMatches
from textual.markup import escape
from textual.message import Message
from textual.widgets import Input, Label, Select, Static, Switch

from labdeck.backend.errors import UserError
from labdeck.backend.presets import ParamRow, parse_value, toml_value


def literal_choices(type_name: str) -> list[Any] | None:
    """`Literal['a', 'b']` → ['a', 'b'] (the schema gives types as text)."""
    if not type_name.startswith("Literal[") or not type_name.endswith("]"):
        return None
    try:
        values = ast.literal_eval("[" + type_name[len("Literal[") : -1] + "]")
    except (ValueError, SyntaxError):
        return None
    return list(values)


_PLAIN = {
    "bool": "on/off",
    "int": "whole number",
    "float": "number",
    "str": "text",
    "list[float]": "list of numbers",
    "list[int]": "list of whole numbers",
    "list[str]": "list of texts",
}


def human_type(type_name: str) -> str:
    """The schema's Python type in a researcher's words: `Literal['auto', 'cpu']` ->
    "one of auto, cpu", `str` -> "text", `int | None` -> "whole number or none"."""
    choices = literal_choices(type_name)
    if choices is not None:
        return "one of " + ", ".join(str(c) for c in choices)
    if type_name.startswith("list[") and type_name.endswith("]"):
        inner = type_name[len("list[") : -1]
        inner_choices = literal_choices(inner)
        if inner_choices is not None:
            return "list of: " + ", ".join(str(c) for c in inner_choices)
    if " | " in type_name:
        parts = [p.strip() for p in type_name.split("|")]
        return " or ".join("none" if p == "None" else human_type(p) for p in parts)
    return _PLAIN.get(type_name, type_name)


def _num(text: str) -> str:
    try:
        v = float(text)
    except ValueError:
        return text
    return str(int(v)) if v.is_integer() else f"{v:g}"


def human_bounds(bounds: str, type_name: str) -> str:
    """`>=0 <=1024` -> "0 to 1024", `>0.0 <1.0` -> "above 0, below 1", `len>=1` ->
    "not empty" (for a list: "at least 1 item")."""
    listy = type_name.startswith("list[")
    unit = "items" if listy else "characters"
    low = high = None
    len_low = len_high = None
    for token in bounds.split():
        if token.startswith("len>="):
            len_low = _num(token[5:])
        elif token.startswith("len<="):
            len_high = _num(token[5:])
        elif token.startswith(">="):
            low = ("", _num(token[2:]))
        elif token.startswith(">"):
            low = ("above ", _num(token[1:]))
        elif token.startswith("<="):
            high = ("", _num(token[2:]))
        elif token.startswith("<"):
            high = ("below ", _num(token[1:]))
    parts = []
    if low and high and not low[0] and not high[0]:
        parts.append(f"{low[1]} to {high[1]}")
    else:
        if low:
            parts.append(f"{low[0] or 'at least '}{low[1]}")
        if high:
            parts.append(f"{high[0] or 'at most '}{high[1]}")
    if len_low == "1" and not listy:
        parts.append("not empty")
    elif len_low:
        parts.append(f"at least {len_low} {unit if len_low != '1' else unit[:-1]}")
    if len_high:
        parts.append(f"up to {len_high} {unit}")
    return ", ".join(parts)


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
