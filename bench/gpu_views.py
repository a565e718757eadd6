"""bench_gpu check of the dashboard: the Runs screen's GPU strip and a GPU run's Monitor
(memory and batch panels) captured as PNG.

Textual exports a screen as SVG; the PNG comes from cairosvg where it is installed, else
from the same render drawn cell by cell with Pillow in DejaVu Sans Mono (matplotlib ships
the font), which needs no system library: the GPU image has neither cairo nor a browser.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

from gpu_common import Env, Skip, check

SIZE = (120, 40)
FONT_PX = 16


def _font(bold: bool) -> Any:
    import matplotlib
    from PIL import ImageFont

    name = "DejaVuSansMono-Bold.ttf" if bold else "DejaVuSansMono.ttf"
    return ImageFont.truetype(
        str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name), FONT_PX
    )


def raster(app: Any) -> Any:
    """The app's current screen as a Pillow image, one character cell at a time."""
    from PIL import Image, ImageDraw
    from rich.cells import cell_len
    from rich.console import Console
    from rich.segment import ControlType
    from rich.terminal_theme import DEFAULT_TERMINAL_THEME as THEME

    width, height = app.size
    console = Console(
        width=width,
        height=height,
        file=io.StringIO(),
        force_terminal=True,
        color_system="truecolor",
        record=True,
        legacy_windows=False,
        safe_box=False,
    )  # fmt: skip  (as App.export_screenshot renders)
    console.print(
        app.screen._compositor.render_update(full=True, screen_stack=app._background_screens)
    )
    fonts = {False: _font(False), True: _font(True)}
    cw = round(fonts[False].getlength("M"))
    ch = int(FONT_PX * 1.25)
    img = Image.new("RGB", (cw * width, ch * height), tuple(THEME.background_color))
    draw = ImageDraw.Draw(img)
    x = y = 0
    for seg in console._record_buffer:
        if seg.control:  # a full update places each line with a cursor move (0-based x, y)
            for code in seg.control:
                if code[0] == ControlType.CURSOR_MOVE_TO:
                    x, y = code[1], code[2]
            continue
        style = seg.style
        fg = style.color.get_truecolor(THEME) if style and style.color else THEME.foreground_color
        bg = (
            style.bgcolor.get_truecolor(THEME, foreground=False)
            if style and style.bgcolor
            else THEME.background_color
        )
        if style and style.reverse:
            fg, bg = bg, fg
        bold = bool(style and style.bold)
        for char in seg.text:
            if char == "\n":
                x, y = 0, y + 1
                continue
            w = max(1, cell_len(char))
            box = (x * cw, y * ch, (x + w) * cw, (y + 1) * ch)
            draw.rectangle(box, fill=tuple(bg))
            if not char.isspace():
                draw.text((x * cw, y * ch + 1), char, font=fonts[bold], fill=tuple(fg))
            x += w
    return img


def save_png(app: Any, path: Path) -> str:
    """Write the current screen as PNG; returns how it was drawn."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import cairosvg

        cairosvg.svg2png(bytestring=app.export_screenshot().encode(), write_to=str(path))
        return "cairosvg"
    except ImportError:
        raster(app).save(path)
        return "cell raster (Pillow)"


async def capture(results: Path, run: Path, out: Path) -> list[str]:
    """The Runs screen (GPU strip) and the run's Monitor, as out/gpu-runs.png and gpu-monitor.png."""
    from labdeck.backend.runs import Run
    from labdeck.tui.app import LabdeckApp

    app = LabdeckApp(results=results, gpu_interval=0.5)
    lines = []
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(2.0)  # the strip's first reading arrives from its thread
        how = save_png(app, out / "gpu-runs.png")
        lines.append(f"{out / 'gpu-runs.png'} ({how})")
        app.open_monitor(Run(run))
        await pilot.pause(2.5)
        how = save_png(app, out / "gpu-monitor.png")
        lines.append(f"{out / 'gpu-monitor.png'} ({how})")
    return lines


@check("dashboard", 0.04)
def dashboard(env: Env) -> None:
    """The dashboard on the adaptive_batch run: the GPU strip and the Monitor's memory and batch views."""
    run = env.shared.get("adaptive_run")
    if run is None:
        raise Skip("no GPU run to show: adaptive_batch did not finish one")
    for line in asyncio.run(capture(run.parent, run, env.screenshots)):
        env.emit("dashboard.png", line)
