from __future__ import annotations

import pytest

from dvsa.metrics.repetition import repeats_phrase, repetition_share


@pytest.mark.parametrize("caption,repeats", [
    ("a white cross and the white cross", True),
    ("a purple diamond and a purple diamond in the image", True),
    ("a red circle is bigger than a red circle", True),
    ("two white crosses", False),
    ("a red circle left of a red square", False),
    ("a white cross and a white star", False),
    ("the red circle", False),
    ("", False),
])
def test_a_repeated_noun_phrase_is_found_and_a_shared_colour_is_not(caption: str, repeats: bool) -> None:
    assert repeats_phrase(caption.split()) is repeats


def test_the_share_counts_captions() -> None:
    assert repetition_share([["a", "b", "c", "a", "b"], ["two", "crosses"]]) == 0.0  # "a" is a function word
    assert repetition_share([["red", "cross", "and", "red", "cross"], ["two", "crosses"]]) == 0.5
    assert repetition_share([]) == 0.0
