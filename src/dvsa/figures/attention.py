"""Where each generated word looked: the caption split into runs of consecutive words that attend most to
the same region, each run's region outlined in the run's colour (a picture like the alignment figure)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from dvsa.figures.boxes import PALETTE, LabelledBox, add_caption, draw_labelled_boxes


def attention_runs(tokens: Sequence[str], attention: np.ndarray) -> list[tuple[str, int]]:
    """(words, region) runs: consecutive tokens whose most attended region (argmax of attention (T, R)) is
    the same."""
    runs: list[tuple[list[str], int]] = []
    for t, word in enumerate(tokens):
        region = int(attention[t].argmax())
        if runs and runs[-1][1] == region:
            runs[-1][0].append(word)
        else:
            runs.append(([word], region))
    return [(" ".join(words), region) for words, region in runs]


def region_colors(runs: Sequence[tuple[str, int]]) -> dict[int, tuple[int, int, int]]:
    """The colour of each attended region: PALETTE's colours in the order the runs first reach each region."""
    colors: dict[int, tuple[int, int, int]] = {}
    for _, region in runs:
        colors.setdefault(region, PALETTE[len(colors) % len(PALETTE)])
    return colors


def attention_figure(
    image: Image.Image, boxes: np.ndarray, tokens: Sequence[str], attention: np.ndarray
) -> Image.Image:
    """`image` with the regions the caption's words attended to; boxes (R, 4) xyxy in its pixels,
    attention (T, R) for the T tokens."""
    runs = attention_runs(tokens, attention)
    colors = region_colors(runs)
    labelled = [
        LabelledBox(boxes[region], f"{region}" if region else "0 (whole)", color) for region, color in colors.items()
    ]
    drawn = draw_labelled_boxes(image, labelled)
    return add_caption(drawn, [(text, colors[region]) for text, region in runs])
