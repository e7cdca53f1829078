"""Grounding accuracy on the shapes world: does a colour or shape word align to a box around such an object?

For each colour / shape word t of a caption, the region it aligns to is argmax_i v_i . s_t over the image's
real regions (the word's own term of eq. (8)). It counts as correct when that region's box has IoU >= a
threshold with a true object of that colour (colour words) or shape (shape words, synonyms and plurals
mapped to the shape by the generator's word lists). The true objects are read here only, never by the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dvsa.data.shapes_grammar import SHAPE_WORDS
from dvsa.data.shapes_scene import COLORS

WORD_CLASSES = ("color", "shape")


def shapes_lexicon() -> dict[str, tuple[str, str]]:
    """word -> (class, value): "red" -> ("color", "red"), "discs" -> ("shape", "circle")."""
    lexicon = {c: ("color", c) for c in COLORS}
    for shape, forms in SHAPE_WORDS.items():
        for singular, plural in forms:
            lexicon[singular] = lexicon[plural] = ("shape", shape)
    return lexicon


def box_iou(box: Sequence[float], boxes: np.ndarray) -> np.ndarray:
    """IoU of one xyxy box with each of boxes (M, 4) -> (M,)."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    x0, y0 = np.maximum(box[0], b[:, 0]), np.maximum(box[1], b[:, 1])
    x1, y1 = np.minimum(box[2], b[:, 2]), np.minimum(box[3], b[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-12)


def is_grounded(
    word_class: str, value: str, box: Sequence[float], objects: list[dict[str, Any]], iou_threshold: float
) -> bool:
    """Whether `box` overlaps (IoU >= threshold) a true object whose `word_class` attribute is `value`."""
    matching = [o["box"] for o in objects if o[word_class] == value]
    return bool(matching) and bool((box_iou(box, np.array(matching)) >= iou_threshold).any())


@dataclass
class GroundingCounts:
    """Correct / total per word class."""

    correct: dict[str, int] = field(default_factory=lambda: dict.fromkeys(WORD_CLASSES, 0))
    total: dict[str, int] = field(default_factory=lambda: dict.fromkeys(WORD_CLASSES, 0))

    def add(self, word_class: str, ok: bool) -> None:
        self.correct[word_class] += int(ok)
        self.total[word_class] += 1

    def summary(self) -> dict[str, float | int | None]:
        """Accuracies in % (overall and per class; None without words) and the number of words behind each."""
        def pct(c: int, n: int) -> float | None:
            return 100.0 * c / n if n else None

        out: dict[str, float | int | None] = {
            "overall": pct(sum(self.correct.values()), sum(self.total.values())),
            "n_words": sum(self.total.values()),
        }
        for c in WORD_CLASSES:
            out[c] = pct(self.correct[c], self.total[c])
            out[f"n_{c}_words"] = self.total[c]
        return out
