"""The image attached to picture-description prompts.

The seed described a well-known kitchen scene. That picture cannot ship with
labdeck, so `builtin:kitchen` draws a comparable scene (a sink overflowing
while someone dries a plate, a child on a tipping stool reaching for a jar, a
window on a garden) from code: deterministic, nothing to download, and enough
detail for a description to be right or wrong about.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...errors import UserError
from .config import BUILTIN_IMAGE


def draw_kitchen(size: tuple[int, int] = (640, 480)) -> Any:
    from PIL import Image, ImageDraw

    w, h = size
    img = Image.new("RGB", size, (236, 228, 210))
    d = ImageDraw.Draw(img)
    d.rectangle([0, int(h * 0.78), w, h], fill=(170, 140, 110))  # floor
    # window with garden, curtains
    d.rectangle(
        [int(w * 0.36), 40, int(w * 0.72), 190], fill=(150, 200, 240), outline=(90, 70, 50), width=6
    )
    d.rectangle([int(w * 0.36), 150, int(w * 0.72), 190], fill=(90, 170, 80))
    d.ellipse([int(w * 0.60), 95, int(w * 0.68), 150], fill=(60, 130, 60))
    d.line([int(w * 0.54), 40, int(w * 0.54), 190], fill=(90, 70, 50), width=4)
    d.rectangle([int(w * 0.32), 35, int(w * 0.37), 200], fill=(200, 80, 80))
    d.rectangle([int(w * 0.71), 35, int(w * 0.76), 200], fill=(200, 80, 80))
    # counter and sink, water spilling to a puddle
    d.rectangle(
        [int(w * 0.30), 250, int(w * 0.95), 300],
        fill=(200, 200, 205),
        outline=(120, 120, 120),
        width=2,
    )
    d.rectangle([int(w * 0.30), 300, int(w * 0.95), int(h * 0.78)], fill=(150, 110, 80))
    d.rectangle([int(w * 0.48), 240, int(w * 0.66), 262], fill=(120, 170, 230))
    d.line([int(w * 0.57), 205, int(w * 0.57), 240], fill=(140, 140, 150), width=6)
    for x in (0.49, 0.53, 0.60, 0.64):
        d.line([int(w * x), 262, int(w * x) - 6, int(h * 0.80)], fill=(90, 150, 230), width=5)
    d.ellipse([int(w * 0.40), int(h * 0.78), int(w * 0.75), int(h * 0.90)], fill=(110, 160, 230))
    # woman drying a plate, standing in the puddle
    d.ellipse([int(w * 0.80), 120, int(w * 0.88), 180], fill=(230, 190, 160))
    d.rectangle([int(w * 0.78), 180, int(w * 0.90), 340], fill=(80, 90, 170))
    d.polygon(
        [(int(w * 0.76), 340), (int(w * 0.92), 340), (int(w * 0.90), 410), (int(w * 0.78), 410)],
        fill=(80, 90, 170),
    )
    d.ellipse(
        [int(w * 0.70), 220, int(w * 0.80), 260], fill=(250, 250, 250), outline=(120, 120, 120)
    )
    # cupboard, cookie jar, tipping stool and a child reaching up
    d.rectangle([20, 30, int(w * 0.28), 150], fill=(160, 110, 70), outline=(90, 60, 40), width=3)
    d.rectangle([60, 70, 110, 115], fill=(210, 170, 110), outline=(120, 90, 50), width=2)
    d.text((64, 86), "COOKIES", fill=(90, 50, 20))
    d.polygon([(50, 380), (150, 350), (160, 370), (62, 402)], fill=(120, 80, 50))
    d.line([70, 395, 40, int(h * 0.92)], fill=(120, 80, 50), width=6)
    d.line([150, 368, 175, int(h * 0.88)], fill=(120, 80, 50), width=6)
    d.ellipse([85, 165, 135, 215], fill=(235, 195, 165))
    d.rectangle([88, 215, 132, 300], fill=(220, 120, 60))
    d.line([110, 220, 90, 110], fill=(235, 195, 165), width=8)
    d.line([100, 300, 95, 360], fill=(60, 60, 120), width=9)
    d.line([122, 300, 130, 355], fill=(60, 60, 120), width=9)
    # a second child below, arms raised
    d.ellipse([190, 250, 230, 290], fill=(235, 195, 165))
    d.rectangle([192, 290, 228, 360], fill=(200, 60, 130))
    d.line([195, 300, 165, 240], fill=(235, 195, 165), width=7)
    return img


def load_image(path: str) -> tuple[Any, str]:
    """(PIL image in RGB, the file name recorded as `image_filename`)."""
    if path == BUILTIN_IMAGE:
        return draw_kitchen(), "builtin-kitchen.png"
    from PIL import Image, UnidentifiedImageError

    p = Path(path).expanduser()
    try:
        with Image.open(p) as im:
            return im.convert("RGB"), p.name
    except FileNotFoundError:
        raise UserError(f"image.path: {p} not found") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise UserError(f"image.path: {p} is not a readable image ({exc})") from None
