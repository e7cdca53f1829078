"""IoU, the shapes lexicon and the grounding criterion."""

from __future__ import annotations

import numpy as np
import pytest

from dvsa.align.grounding import GroundingCounts, box_iou, is_grounded, shapes_lexicon


def test_box_iou() -> None:
    got = box_iou([0, 0, 10, 10], np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]]))
    assert got == pytest.approx([1.0, 50 / 150, 0.0])


def test_lexicon_maps_synonyms_and_plurals() -> None:
    lex = shapes_lexicon()
    assert lex["red"] == ("color", "red")
    assert lex["discs"] == ("shape", "circle") and lex["box"] == ("shape", "square")
    assert "shape" not in lex and "the" not in lex


def test_is_grounded_needs_the_right_object_and_overlap() -> None:
    objects = [{"box": [0, 0, 10, 10], "color": "red", "shape": "circle"},
               {"box": [20, 20, 30, 30], "color": "blue", "shape": "square"}]
    assert is_grounded("color", "red", [0, 0, 11, 11], objects, 0.5)
    assert not is_grounded("color", "blue", [0, 0, 11, 11], objects, 0.5)  # right overlap, wrong object
    assert not is_grounded("shape", "circle", [0, 0, 30, 30], objects, 0.5)  # the whole image: IoU 1/9
    assert not is_grounded("color", "green", [0, 0, 10, 10], objects, 0.5)


def test_counts_summary() -> None:
    c = GroundingCounts()
    for ok in (True, True, False):
        c.add("color", ok)
    assert c.summary() == {"overall": pytest.approx(200 / 3), "n_words": 3, "color": pytest.approx(200 / 3),
                           "n_color_words": 3, "shape": None, "n_shape_words": 0}
