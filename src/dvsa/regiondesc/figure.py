"""The paper's Figure 6 style: an image with its described regions, each box labelled with its generated
description, and the descriptions listed below in their boxes' colours."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from dvsa.evaluate.figures import PALETTE, LabelledBox, add_caption, draw_labelled_boxes


def region_figure(image: Image.Image, boxes: Sequence[Sequence[float]], descriptions: Sequence[str]) -> Image.Image:
    """`image` with each of `boxes` (xyxy, the image's pixels) labelled with its description."""
    colors = [PALETTE[k % len(PALETTE)] for k in range(len(boxes))]
    drawn = draw_labelled_boxes(image, [LabelledBox(b, d, c) for b, d, c in zip(boxes, descriptions, colors)])
    runs = [(f"{k + 1}. {d}", c) for k, (d, c) in enumerate(zip(descriptions, colors))]
    return add_caption(drawn, runs, font_size=max(14, drawn.height // 24)) if runs else drawn


def figure_name(rank: int, filename: str) -> str:
    """reports/regions/<rank>_<image file stem>.png, ranks from 1."""
    return f"{rank:02d}_{Path(filename).stem}.png"
