"""Keys that open a text box, and typing into one.

Textual hands a key to the focused widget asynchronously, so keys typed right after
`/` (or `t`, `n`, `=`) would reach the old focus (the table) and fire its keys: `s`
would stop a run. Those bindings are therefore `priority` bindings, run before the key
is handed on, and focus moves at once (`Screen.set_focus`), so the next keys land in
the box. While a text box has focus every priority key is disabled, so `/`, `t` or `n`
typed into a search are just characters; enter in it leaves it the same way (a
priority `leave_box`), so the key after enter is a key again, not more text.
"""

from __future__ import annotations

from textual.screen import Screen
from textual.widgets import Input

OPENERS = frozenset({"search", "tags", "note", "filter_log", "focus_tol"})
LEAVE = "leave_box"  # enter in a screen's own text box: keep its text, back to the keys


def typing_guard(screen: Screen, action: str) -> bool:
    """For `check_action`: False for an opener while an Input has focus; `leave_box`
    only while one of `screen.BOX_IDS` has focus."""
    focused = screen.focused
    if action == LEAVE:
        return isinstance(focused, Input) and focused.id in getattr(screen, "BOX_IDS", ())
    return not (action in OPENERS and isinstance(focused, Input))
