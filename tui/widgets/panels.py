"""Text panels of the Monitor screen: memory, batch size, phases.

They render markup strings (cheap to rebuild) rather than nested widgets, so a
run writing a thousand events a second costs one `update()` per panel per poll.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from textual.markup import escape
from textual.widgets import Static

from .. import fmt
from ..data import RunView

MARKS = {"grow": "▲", "shrink": "▼", "oom": "✖", "pause": "‖", "start": "●"}
MARK_STYLE = {"grow": "$success", "shrink": "$warning", "oom": "$error", "pause": "$warning"}


def _width(widget: Static, fallback: int = 40) -> int:
    w = widget.content_region.width or widget.size.width
    return max(10, w if w > 0 else fallback)


class ViewPanel(Static):
    """A panel drawn from a RunView; remembers it so a resize can redraw at the new width."""

    _view: RunView | None = None

    def show(self, view: RunView) -> None:
        self._view = view
        self.draw(view)

    # Each panel class defines `draw(view)`; the base only remembers the view for redraws.
    draw: Callable[[RunView], None]

    def on_resize(self) -> None:
        if self._view is not None:
            self.draw(self._view)


class MemoryPanel(ViewPanel):
    """Per device: a gauge, used/total, the source (nvml/torch/host) and a history line."""

    def draw(self, view: RunView) -> None:
        width = _width(self)
        if not view.devices:
            self.update("[dim]no memory samples yet[/dim]")
            return
        lines = []
        for dev in view.devices.values():
            frac = dev.fraction
            level = "$error" if frac > 0.95 else "$warning" if frac > 0.9 else "$success"
            # Every number says what it is: memory used of total, the share, and the
            # device's compute utilisation (for host memory: CPU use), on its own.
            source = f" [dim]({escape(dev.source)})[/dim]"
            name = escape(dev.name)
            room = width - len(dev.device) - len(dev.source) - 4
            if len(dev.name) > room:
                name = escape(dev.name[: max(0, room - 1)] + "…") if room > 3 else ""
            lines.append(f"[b]{escape(dev.device)}[/b] {name}{source}")
            text = f"{fmt.size(dev.used)} of {fmt.size(dev.total)} used"
            lines.append(f"[{level}]{fmt.bar(frac, max(4, width - len(text) - 1))}[/] {text}")
            if dev.util is not None:
                what = "CPU use" if dev.source == "host" else "GPU util"
                lines.append(f"memory {frac * 100:.0f}% · {what} {dev.util:.0f}%")
            else:
                lines.append(f"memory {frac * 100:.0f}%")
            _, ys = dev.history.points()
            lines.append(f"[{level}]{fmt.spark(ys, width, top=dev.total or None)}[/]")
        self.update("\n".join(lines))


class BatchPanel(ViewPanel):
    """Batch size over time with grow/shrink/OOM/pause marks beneath it."""

    def draw(self, view: RunView) -> None:
        width = _width(self)
        marks = list(view.batches)
        if not marks:
            self.update("[dim]no batch events yet[/dim]")
            return
        sizes = [float(m.size) for m in marks]
        top = max(sizes) or 1.0
        recent = marks[-width:]
        line = fmt.spark(sizes, width, top=top)
        under = "".join(
            f"[{MARK_STYLE[m.reason]}]{MARKS[m.reason]}[/]" if m.reason in MARK_STYLE else " "
            for m in recent
        )
        last = marks[-1]
        counts = "  ".join(
            f"{MARKS.get(k, '·')} {k} {n}" for k, n in sorted(view.batch_counts.items())
        )
        self.update(
            f"size [b]{last.size}[/b] ({escape(last.reason)})  max {int(top)}\n"
            f"{line}\n{under}\n[dim]{escape(counts)}[/dim]"
        )


def rate_text(rate: float) -> str:
    """Units per second, or the time one unit takes when that reads better."""
    return f"{rate:.3g}/s" if rate >= 1 else f"{fmt.duration(1 / rate)}/unit"


class PhasePanel(ViewPanel):
    """One bar per phase with done/total, rate and ETA (from that phase's own pace)."""

    def draw(self, view: RunView) -> None:
        width = _width(self)
        if not view.phases:
            self.update("[dim]no phases yet[/dim]")
            return
        live = view.status == "running"
        now = getattr(self.app, "clock", time.time)()
        lines = []
        for ph in view.phases.values():
            current = ph.name == view.current_phase
            name = f"[b]{escape(ph.name)}[/b]" if current else escape(ph.name)
            total = "?" if ph.total is None else str(ph.total)
            eta = ph.eta
            if eta and live and current and ph.t_last:
                eta = max(0.0, eta - max(0.0, now - ph.t_last))
            tail = f"{ph.done}/{total}"
            if ph.rate:
                tail += f"  {rate_text(ph.rate)}"
            finished = bool(ph.total and ph.done >= ph.total) or (not current and not ph.total)
            if ph.stopped:
                tail += "  [$warning]stopped early[/]"
            elif finished:
                tail += "  done"
            elif eta is not None and live and current:
                tail += f"  ETA {fmt.duration(eta)}"
            elif live and current and ph.t_start:
                tail += f"  for {fmt.duration(now - ph.t_start)}"  # no total or no pace yet
            lines.append(f"{name}  {tail}")
            extra = ph.extra_text() if current and not finished else ""
            if extra:
                lines.append(f"[dim]{escape(extra)}[/dim]")
            # A phase without a total that was followed by another one has finished.
            frac = 1.0 if finished else ph.fraction
            lines.append(f"{fmt.bar(frac, max(8, width - 6))} {frac * 100:3.0f}%")
            if ph.stopped:
                lines.append(f"[dim]{escape(ph.stopped)}[/dim]")
        self.update("\n".join(lines))
