"""Launch: pick a preset, edit its parameters, see the estimate, start a detached run.

Everything that could import model code (the dry-run estimate, the run itself)
happens in a `labdeck` subprocess; this screen only validates against the kind's
schema, which lives in the kind's config.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.markup import escape
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Header, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from labdeck.backend.errors import UserError
from labdeck.backend.kinds import kind_names
from labdeck.backend.presets import (
    Preset,
    apply_sets,
    flatten,
    list_presets,
    load_preset,
    resolve,
    schema_rows,
    toml_value,
    write_preset,
)

from .. import actions, fmt
from ..launching import Launch, Outcome
from ..widgets.footer import PriorityFooter
from ..widgets.grid_editor import GridEditor
from ..widgets.param_form import ParamForm

if TYPE_CHECKING:
    from ..app import LabdeckApp


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(1, width - 1)] + "…"


def preset_label(title: str, kind: str, path: Path, width: int = 30) -> Text:
    """One line: the title, then the kind when it fits (the estimate panel names the
    file), so the list never wraps an entry over several lines."""
    label = Text(end="", no_wrap=True, overflow="ellipsis")
    label.append(_cut(title, width), style="bold")
    if len(title) + len(kind) + 3 <= width:
        label.append(f"\u2002·\u2002{kind}", style="dim")  # en spaces: never trimmed
    return label


def broken_label(path: Path, width: int = 30) -> Text:
    """A preset that does not load: its name on one line, marked; its error shows under
    the form when it is highlighted (LaunchScreen._load), in full in `labdeck presets`."""
    return Text(_cut(f"✘ {path.name}", width), style="bold red", no_wrap=True, end="")


@dataclass
class Source:
    """What the form starts from: a preset file, or a kind's bare defaults."""

    kind: str
    preset: Preset | None

    @property
    def params(self) -> dict[str, Any]:
        return self.preset.params if self.preset else {}

    @property
    def title(self) -> str:
        return self.preset.title if self.preset else self.kind

    def cli_args(self) -> list[str]:
        return [str(self.preset.path)] if self.preset else ["--kind", self.kind]


class LaunchScreen(Screen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+t", "estimate", "Dry run", priority=True),
        Binding("ctrl+r", "launch", "Launch", priority=True),
        Binding("ctrl+s", "save", "Save preset", priority=True),
        Binding("ctrl+n", "reset", "Reset to preset", priority=True),
        # Narrow terminals show the form or the side panels (overrides, grid, estimate).
        Binding("ctrl+o", "side", "Estimate", priority=True),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.source: Source | None = None
        self._sets: list[str] = []
        self._valid = False
        self._wanted: str | None = None
        self._loaded: str | None = None
        self._loading = False
        self._broken: dict[str, str] = {}  # preset path -> why it does not load

    @property
    def lab(self) -> LabdeckApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal():
            yield OptionList(id="presets")
            with Vertical(id="form-col"):
                with Horizontal(id="title-row", classes="field"):
                    yield Label("title ", classes="label")
                    yield Input(id="run-title", placeholder="title in the run id")
                yield ParamForm(id="form")
                yield Static(id="launch-error", markup=False)
                yield Static(id="launch-status", markup=False)
            with Vertical(id="side-col"):
                yield Static("[dim]no overrides[/dim]", id="diff")
                yield GridEditor(id="grid")
                yield Static("[dim]ctrl+t: dry run (units, memory, time)[/dim]", id="estimate")
                with Horizontal(id="launch-buttons"):
                    yield Button("Dry run", id="btn-estimate")
                    yield Button("Launch", variant="success", id="btn-launch")
                    yield Button("Save", id="btn-save")
        yield PriorityFooter()

    def on_resize(self) -> None:
        # Narrow: the side column (overrides, grid, estimate, buttons) folds away behind
        # ctrl+o (and shows by itself for a dry run); the error line stays under the form.
        self.set_class(self.size.width < 100, "-narrow")
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "side":  # only narrow layouts fold the side panels away
            return self.has_class("-narrow")
        return True

    def action_side(self) -> None:
        """Narrow: switch between the form and the overrides, grid and estimate panels."""
        self.set_class(not self.has_class("-side"), "-side")
        if self.has_class("-side"):
            self.query_one("#grid-axes").focus()
        else:
            self.query_one(ParamForm).focus_first()

    def _label_width(self) -> int:
        # the list's width less its border, padding and scroll bar
        return 18 if self.app.size.width < 100 else 28

    def on_mount(self) -> None:
        self.title = "labdeck · launch"
        self.query_one("#presets").border_title = "presets"
        self.query_one("#form").border_title = "parameters"
        self.query_one("#diff").border_title = "overrides vs preset"
        self.query_one("#estimate").border_title = "estimate"
        self.query_one("#grid").border_title = "grid"
        options: list[Option] = []
        for info in list_presets(self.lab.presets_dirs):
            if info.error:
                self._broken[str(info.path)] = info.error
                options.append(
                    Option(
                        broken_label(info.path, self._label_width()),
                        id=f"bad:{info.path}",
                    )
                )
            else:
                options.append(
                    Option(
                        preset_label(info.title, info.kind, info.path, self._label_width()),
                        id=f"preset:{info.path}",
                    )
                )
        for kind in kind_names():
            label = Text(_cut(kind, self._label_width()), style="italic", no_wrap=True, end="")
            if len(kind) + len(" · defaults") <= self._label_width():
                label.append("\u2002·\u2002defaults", style="dim")
            options.append(Option(label, id=f"kind:{kind}"))
        presets = self.query_one("#presets", OptionList)
        presets.add_options(options)
        self.set_focus(presets)
        self.lab.launcher.listeners.append(self._launch_ended)
        self._show_pending()
        self.set_interval(0.5, self._show_pending)
        first = next((i for i, o in enumerate(options) if not str(o.id).startswith("bad:")), None)
        if first is not None:
            presets.highlighted = first  # posts OptionHighlighted, which loads it

    # ------------------------------------------------------------------ source

    @on(OptionList.OptionHighlighted, "#presets")
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        self.select_option(event.option.id or "")

    @on(OptionList.OptionSelected, "#presets")
    def _selected(self) -> None:
        """Enter on a preset: edit its first parameter."""
        self.query_one(ParamForm).focus_first()

    def select_option(self, option_id: str) -> None:
        """Load a preset into the form; fast scrolling coalesces to the last one asked for
        (loads are serialised: tearing down a form while it mounts is not safe)."""
        self._wanted = option_id
        if not self._loading:
            self._loading = True
            self._load_loop()

    @work(group="load-source")
    async def _load_loop(self) -> None:
        try:
            while self._wanted != self._loaded:
                target = self._wanted
                await self._load(target)
                self._loaded = target
        except NoMatches:
            return  # the form was closed while it loaded: nothing left to fill
        finally:
            self._loading = False

    async def _load(self, option_id: str) -> None:
        kind_of, _, value = option_id.partition(":")
        try:
            if kind_of == "preset":
                preset = load_preset(Path(value))
                source = Source(preset.kind, preset)
            elif kind_of == "kind":
                source = Source(value, None)
            elif kind_of == "bad":  # its error, and nothing to launch from it
                self.source = None
                await self.query_one(ParamForm).load([], {})
                self._show_error(self._broken.get(value, "this preset does not load"))
                self.query_one("#diff", Static).update("[dim]no overrides[/dim]")
                return
            else:
                return
            rows = schema_rows(source.kind)
            values = flatten(resolve(source.kind, {}).params)
        except UserError as exc:
            self._show_error(str(exc))
            return
        # The preset's own values, even invalid ones, so its errors show on its fields
        # and can be fixed here instead of only being reported.
        values.update({k: v for k, v in flatten(source.params).items() if k in values})
        self.source = source
        self.query_one("#run-title", Input).value = source.title
        await self.query_one(ParamForm).load(rows, values)
        self.query_one("#estimate", Static).update(self._source_line())
        self._revalidate()

    def _source_line(self) -> str:
        s = self.source
        if s is None:
            return ""
        desc = (s.preset.description if s.preset else "") or ""
        where = str(s.preset.path) if s.preset else f"kind {s.kind}, no preset"
        return f"[b]{escape(s.title)}[/b] [dim]{escape(where)}[/dim]\n{escape(desc)}\n\n[dim]ctrl+t: dry run[/dim]"

    # ------------------------------------------------------------------ validation

    @on(ParamForm.Edited)
    def _edited(self) -> None:
        self._revalidate()

    def _revalidate(self) -> None:
        if self.source is None:
            return
        form = self.query_one(ParamForm)
        changed, errors = form.overrides()
        self._sets = [f"{k}={toml_value(new)}" for k, (_, new) in changed.items()]
        message = None
        where = str(self.source.preset.path) if self.source.preset else "defaults"
        if not errors:
            try:
                resolve(self.source.kind, self.source.params, self._sets, source=where)
            except UserError as exc:
                message = str(exc)
        if message is not None or errors:
            # The backend stops at its first error; ask it about each field on its own
            # so every invalid field shows its message at once.
            errors.update(self._field_errors(form, changed, errors, where))
            if (
                errors
                and message is not None
                and any(f"params.{n}:" in message or f" {n}:" in message for n in errors)
            ):
                message = None
        form.show_errors(errors)
        self._valid = not errors and message is None
        if errors and message is None:
            message = f"{len(errors)} field(s) invalid: {', '.join(errors)}"
        self._show_error(message)
        lines = [
            f"[b]{escape(k)}[/b]: [dim]{escape(toml_value(old))}[/dim] → [$accent]{escape(toml_value(new))}[/]"
            for k, (old, new) in changed.items()
        ]
        self.query_one("#diff", Static).update("\n".join(lines) or "[dim]no overrides[/dim]")

    def _field_errors(
        self,
        form: ParamForm,
        changed: dict[str, tuple[Any, Any]],
        known: dict[str, str],
        where: str,
    ) -> dict[str, str]:
        assert self.source is not None
        out: dict[str, str] = {}
        base = {k: v for k, v in flatten(self.source.params).items()}
        for name in form.fields:
            if name in known:
                continue
            sets = [f"{name}={toml_value(changed[name][1])}"] if name in changed else []
            if not sets and name not in base:
                continue
            try:
                # Only this field differs from the kind's defaults.
                resolve(
                    self.source.kind, {}, sets or [f"{name}={toml_value(base[name])}"], source=where
                )
            except UserError as exc:
                text = str(exc)
                out[name] = text.split(f"{name}:", 1)[1].strip() if f"{name}:" in text else text
        return out

    def _show_error(self, message: str | None) -> None:
        self.query_one("#launch-error", Static).update(message or "")

    def _ready(self) -> bool:
        if self.source is None:
            self.notify("pick a preset first", severity="warning")
            return False
        grid_error = self.query_one(GridEditor).error
        if grid_error:
            self.notify(grid_error, severity="error", markup=False)
            return False
        if not self._valid:
            self.notify("fix the invalid fields first", severity="error")
            return False
        return True

    def _title(self) -> str | None:
        title = self.query_one("#run-title", Input).value.strip()
        return title or None

    # ------------------------------------------------------------------ actions

    @on(Button.Pressed, "#btn-estimate")
    def action_estimate(self) -> None:
        if self._ready():
            self.set_class(True, "-side")  # narrow: the estimate is on the side panels
            self.query_one("#estimate", Static).update("[dim]estimating…[/dim]")
            self._estimate(
                self.source.cli_args(), list(self._sets), self.query_one(GridEditor).axes
            )  # type: ignore[union-attr]

    @work(thread=True, exclusive=True, group="estimate")
    def _estimate(self, source_args: list[str], sets: list[str], grid: list[str]) -> None:
        result = actions.dry_run(source_args, sets, self.lab.results, grid)
        self.app.call_from_thread(self._show_estimate, result)

    def _show_estimate(self, result: actions.CliResult) -> None:
        if not result.ok:
            self.query_one("#estimate", Static).update(f"[$error]{escape(result.message)}[/]")
            return
        try:
            data = json.loads(result.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            self.query_one("#estimate", Static).update(
                f"[$error]dry run printed no JSON: {escape(result.stdout[:200])}[/]"
            )
            return
        if "members" in data:  # a grid: the sum over its runs
            members = data["members"]
            units = sum(m.get("units") or 0 for m in members)
            seconds = sum(m.get("seconds") or 0 for m in members)
            memory = fmt.size(max((m.get("memory_bytes") or 0 for m in members), default=0))
            self.query_one(GridEditor).show_estimate(len(members), units, seconds, memory)
            data = {
                "units": units,
                "memory_bytes": max((m.get("memory_bytes") or 0 for m in members), default=0),
                "seconds": seconds,
                "lines": [fmt.counted(len(members), "run")],
            }
        lines = [
            f"units   [b]{data.get('units')}[/b]",
            f"memory  [b]{fmt.size(data.get('memory_bytes'))}[/b]",
            f"time    [b]~{fmt.duration(data.get('seconds'))}[/b]",
            "",
            *(escape(str(x)) for x in data.get("lines", [])),
        ]
        self.query_one("#estimate", Static).update("\n".join(lines))

    @on(Button.Pressed, "#btn-launch")
    def action_launch(self) -> None:
        pending = self.lab.launcher.pending
        if pending is not None:  # a second ctrl+r while one is pending launches nothing
            self.notify(
                f"not launched twice: {pending.line()}", severity="warning", timeout=4, markup=False
            )
            return
        if not self._ready():
            return
        src = self.source
        assert src is not None
        launch = Launch(
            self._title() or src.title,
            src.cli_args(),
            list(self._sets),
            self._title(),
            self.query_one(GridEditor).axes,
        )
        refused = self.lab.launcher.start(launch)
        if refused:
            self.notify(refused, severity="warning", timeout=4, markup=False)
        self._show_pending()

    def _show_pending(self) -> None:
        """The pending launch's stage and time under the form (until it ends)."""
        pending = self.lab.launcher.pending
        status = self.query_one("#launch-status", Static)
        status.display = pending is not None
        if pending is not None:
            status.update(pending.line())

    def _launch_ended(self, outcome: Outcome) -> None:
        self._show_pending()
        if outcome.error:
            self._show_error(outcome.error)
            self.query_one("#estimate", Static).update(f"[$error]{escape(outcome.error)}[/]")
            return
        from labdeck.backend.runs import Run

        if self.app.screen is self:
            self.app.pop_screen()
        run_dir = self.lab.results / str(outcome.run_id)
        if (run_dir / "config.json").is_file():
            self.lab.open_monitor(Run(run_dir))

    def on_unmount(self) -> None:
        listeners = self.lab.launcher.listeners
        if self._launch_ended in listeners:
            listeners.remove(self._launch_ended)
        pending = self.lab.launcher.pending
        if pending is not None:
            self.lab.notify(f"{pending.line()} (continues)", timeout=6, markup=False)

    @on(Button.Pressed, "#btn-save")
    def action_save(self) -> None:
        if not self._ready():
            return
        src = self.source
        assert src is not None
        folder = src.preset.path.parent if src.preset else Path("presets")
        title = self._title() or src.title
        default = folder / f"{title}.toml"
        if default.exists():
            default = folder / f"{title}-edited.toml"

        def save(path: str | None) -> None:
            if path:
                self._save(Path(path), title)

        self.app.push_screen(SavePresetScreen(str(default)), save)

    def _save(self, path: Path, title: str) -> None:
        src = self.source
        assert src is not None
        try:
            params = apply_sets(src.params, self._sets)
            desc = (
                src.preset.description if src.preset else ""
            ) or f"{src.kind} from the dashboard"
            write_preset(path, src.kind, title, desc, params)
            load_preset(path)  # what was written must load back
        except (UserError, OSError, TypeError) as exc:
            self.notify(f"{path}: not saved: {exc}", severity="error", timeout=8, markup=False)
            return
        self.notify(f"saved {path}", timeout=5, markup=False)
        presets = self.query_one("#presets", OptionList)
        presets.add_option(
            Option(preset_label(title, src.kind, path, self._label_width()), id=f"preset:{path}")
        )

    def action_reset(self) -> None:
        presets = self.query_one("#presets", OptionList)
        if presets.highlighted is not None:
            self._loaded = None
            self.select_option(presets.get_option_at_index(presets.highlighted).id or "")


class SavePresetScreen(ModalScreen[str | None]):
    """Asks where to write the edited form as a preset file."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, default: str) -> None:
        super().__init__()
        self.default = default

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label("Save the edited parameters as a preset file:")
            yield Input(self.default, id="save-path")
            with Horizontal(id="buttons"):
                yield Button("Save", variant="success", id="yes")
                yield Button("Cancel", id="no")

    def on_mount(self) -> None:
        self.set_focus(self.query_one(Input))

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(self.query_one(Input).value.strip() if event.button.id == "yes" else None)

    def action_cancel(self) -> None:
        self.dismiss(None)
