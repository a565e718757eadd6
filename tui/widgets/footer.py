"""A footer that keeps the most important keys when the terminal is narrow.

Textual's footer lists every shown binding and cuts the row at the screen edge
(`d D` at 80 columns). This one ranks them (`FOOTER_PRIORITY`: lower is kept
first), keeps what fits, and shows them in their declared order; `?` always
lists every key.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

# The keyboard map's most-used actions first; anything unlisted ranks after these.
FOOTER_PRIORITY = (
    "help",
    "quit",
    "open",
    "launch",
    "back",
    "stop",
    "resume",
    "compare",
    "search",
    "filter_log",
    "launch_run",
    "estimate",
    "side",
    "focus_tol",
    "next_view",
    "x_axis",
    "zoom",
    "smooth",
    "kill",
    "tags",
    "note",
    "mark",
    "sort",
    "reproduce",
    "tab",
)


def _rank(action: str) -> int:
    name = action.split("(", 1)[0].removeprefix("app.").removeprefix("screen.")
    return FOOTER_PRIORITY.index(name) if name in FOOTER_PRIORITY else len(FOOTER_PRIORITY)


class PriorityFooter(Footer):
    """Recomposes only when what it shows changes: every focus change signals new
    bindings, and each recompose restyles every key (tens of milliseconds on a busy
    machine, the largest part of a screen's first frame otherwise)."""

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self._width = 0
        self._shown: tuple = ()

    def on_resize(self) -> None:
        width = self.app.size.width
        if width != self._width:
            self._width = width
            self.compact = width < 100
            self._shown = ()
            self.call_after_refresh(self.recompose)

    def bindings_changed(self, screen) -> None:
        self._bindings_ready = True
        if not screen.app.app_focus or not self.is_attached or screen is not self.screen:
            return
        if self._signature() != self._shown:
            self.call_after_refresh(self.recompose)

    def _signature(self) -> tuple:
        return tuple(
            (b.key, b.description, enabled)
            for _, b, enabled, _ in self.screen.active_bindings.values()
            if b.show
        )

    def _key(self, *args, **kw) -> FooterKey:
        """A key styled compact or not from the start (no bound reactive to restyle it)."""
        compact = self.compact
        kw["classes"] = (kw.get("classes", "") + (" -compact" if compact else "")).strip()
        key = FooterKey(*args, **kw)
        key.set_reactive(FooterKey.compact, compact)
        return key

    def compose(self) -> ComposeResult:
        if not self._bindings_ready:
            return
        self._shown = self._signature()
        shown = []
        seen: set[str] = set()
        for _, binding, enabled, tooltip in self.screen.active_bindings.values():
            if binding.show and binding.action not in seen:
                seen.add(binding.action)
                shown.append((binding, enabled, tooltip))
        width = self.app.size.width
        budget = width - (12 if self.show_command_palette else 0)
        gap = 1 if width < 100 else 2
        kept: set[int] = set()
        order = sorted(range(len(shown)), key=lambda i: (_rank(shown[i][0].action), i))
        for i in order:
            binding = shown[i][0]
            cost = len(self.app.get_key_display(binding)) + len(binding.description) + 1 + gap
            if cost <= budget:
                kept.add(i)
                budget -= cost
        for i, (binding, enabled, tooltip) in enumerate(shown):
            if i in kept:
                yield self._key(
                    binding.key,
                    self.app.get_key_display(binding),
                    binding.description,
                    binding.action,
                    disabled=not enabled,
                    tooltip=tooltip,
                )
        if self.show_command_palette and self.app.ENABLE_COMMAND_PALETTE:
            try:
                _node, binding, enabled, _tip = self.screen.active_bindings[
                    self.app.COMMAND_PALETTE_BINDING
                ]
            except KeyError:
                return
            yield FooterKey(
                binding.key,
                self.app.get_key_display(binding),
                binding.description if width >= 100 else "",
                binding.action,
                classes="-command-palette",
                disabled=not enabled,
            )
