"""The paper's Figure 6 style: an image with its described regions, each box labelled with its generated
description, and the descriptions listed below in their boxes' colours."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from dvsa.data.dataset import image_path
from dvsa.data.images import load_rgb
from dvsa.figures.boxes import PALETTE, LabelledBox, add_caption, draw_labelled_boxes
from dvsa.regiondesc.references import RegionItem


def region_figure(image: Image.Image, boxes: Sequence[Sequence[float]], descriptions: Sequence[str]) -> Image.Image:
    """`image` with each of `boxes` (xyxy, the image's pixels) labelled with its description."""
    colors = [PALETTE[k % len(PALETTE)] for k in range(len(boxes))]
    drawn = draw_labelled_boxes(image, [LabelledBox(b, d, c) for b, d, c in zip(boxes, descriptions, colors)])
    runs = [(f"{k + 1}. {d}", c) for k, (d, c) in enumerate(zip(descriptions, colors))]
    return add_caption(drawn, runs, font_size=max(14, drawn.height // 24)) if runs else drawn


def figure_name(rank: int, filename: str) -> str:
    """reports/regions/<rank>_<image file stem>.png, ranks from 1."""
    return f"{rank:02d}_{Path(filename).stem}.png"


def write_figures(
    items: Sequence[RegionItem], dataset: dict[str, Any], descriptions: Sequence[str], n: int, out_dir: Path
) -> int:
    """Figures of `n` images spread evenly over those with described regions, into the new folder out_dir;
    returns how many."""
    out_dir.mkdir(parents=True)
    by_image: dict[int, list[int]] = {}
    for k, it in enumerate(items):
        by_image.setdefault(it.image_row, []).append(k)
    rows = list(by_image)
    picks = sorted({int(round(x)) for x in np.linspace(0, len(rows) - 1, min(n, len(rows)))}) if n else []
    for rank, j in enumerate(picks):
        info = dataset["images"][rows[j]]
        ks = by_image[rows[j]]
        image = load_rgb(image_path(dataset["image_root"], info))
        region_figure(image, [items[k].box for k in ks], [descriptions[k] for k in ks]).save(
            out_dir / figure_name(rank + 1, info["filename"])
        )
    return len(picks)
