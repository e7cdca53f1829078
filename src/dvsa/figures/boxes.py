"""Small drawing helpers for report figures: boxes with text labels on an image, a caption strip below it.

PALETTE's colours all read on white, so the same colour can mark a box and its words in the caption.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (240, 50, 230), (0, 128, 128), (170, 110, 40), (128, 0, 0), (0, 0, 128),
)


@dataclass
class LabelledBox:
    """A box (x0, y0, x1, y1) in the image's pixels, the text written on it, and its colour."""

    box: Sequence[float]
    text: str
    color: tuple[int, int, int]


def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's bundled font at `size` pixels (no font file needed)."""
    return ImageFont.load_default(size=size)


def draw_labelled_boxes(image: Image.Image, boxes: Sequence[LabelledBox], min_side: int = 384) -> Image.Image:
    """A copy of `image`, enlarged so its short side is at least `min_side`, with each box outlined and its
    text written in a filled tag just above the box's top-left corner (inside it when there is no room)."""
    scale = max(1.0, min_side / min(image.size))
    out = image.convert("RGB").resize((round(image.width * scale), round(image.height * scale)), Image.BICUBIC)
    draw = ImageDraw.Draw(out)
    f = font(max(12, round(out.height / 28)))
    width = max(2, round(out.height / 150))
    for item in boxes:
        x0, y0, x1, y1 = (round(c * scale) for c in item.box)
        x1, y1 = min(x1, out.width - 1), min(y1, out.height - 1)
        draw.rectangle((x0, y0, x1, y1), outline=item.color, width=width)
    for item in boxes:  # tags after all outlines so that no outline crosses a tag
        x0, y0 = (round(c * scale) for c in item.box[:2])
        left, top, right, bottom = draw.textbbox((0, 0), item.text, font=f)
        tw, th = right - left + 6, bottom - top + 6
        ty = y0 - th if y0 - th >= 0 else y0
        tx, ty = min(max(x0, 0), max(out.width - tw, 0)), min(max(ty, 0), max(out.height - th, 0))
        draw.rectangle((tx, ty, tx + tw, ty + th), fill=item.color)
        draw.text((tx + 3 - left, ty + 3 - top), item.text, fill=_ink(item.color), font=f)
    return out


def add_caption(image: Image.Image, runs: Sequence[tuple[str, tuple[int, int, int]]], font_size: int = 16) -> Image.Image:
    """`image` with a white strip below holding the text runs, each in its colour, wrapped to the width."""
    f = font(font_size)
    probe = ImageDraw.Draw(image)
    space = probe.textlength(" ", font=f)
    lines: list[list[tuple[str, tuple[int, int, int], float]]] = [[]]
    x, margin = 0.0, 8
    for text, color in runs:
        for word in text.split():
            w = probe.textlength(word, font=f)
            if lines[-1] and x + w > image.width - 2 * margin:
                lines.append([])
                x = 0.0
            lines[-1].append((word, color, x))
            x += w + space
    line_h = font_size + 6
    out = Image.new("RGB", (image.width, image.height + line_h * len(lines) + 2 * margin), "white")
    out.paste(image, (0, 0))
    draw = ImageDraw.Draw(out)
    for k, line in enumerate(lines):
        for word, color, wx in line:
            draw.text((margin + wx, image.height + margin + k * line_h), word, fill=color, font=f)
    return out


def _ink(color: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black or white, whichever reads better on `color`."""
    r, g, b = color
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 150 else (255, 255, 255)
