"""Judging the judge: for each claim kind of dvsa.metrics.truth, a true claim scores true and a false one
false on a scene built here, and every sentence the world's grammar writes is judged entirely true."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest

from dvsa.data.shapes_grammar import captions
from dvsa.data.shapes_references import region_phrases
from dvsa.data.shapes_render import BACKGROUNDS
from dvsa.data.shapes_scene import ShapeObject, sample_scene
from dvsa.data.vocab import tokenize
from dvsa.metrics.truth import RELATIONS, judge

# x grows to the right, y downwards; boxes are (x0, y0, x1, y1), x1 and y1 exclusive (128 x 128 image)
SCENE = [
    {"box": [10, 10, 50, 50], "color": "red", "shape": "circle", "size": "large"},  # top left
    {"box": [80, 15, 100, 35], "color": "blue", "shape": "square", "size": "small"},  # top, right of the circle
    {"box": [15, 80, 37, 100], "color": "green", "shape": "triangle", "size": "small"},  # under the circle
    {"box": [60, 70, 102, 110], "color": "yellow", "shape": "star", "size": "large"},  # bottom, under the square
    {"box": [108, 60, 126, 78], "color": "yellow", "shape": "star", "size": "small"},  # far right
]
BACKGROUND = "stripes"
KINDS = {kind for _, kind in RELATIONS} | {"exists", "unique", "count", "distinct", "mention", "background"}
TRUE_PAIR = {  # (A, B) with "A <relation> B" true; "B <relation> A" is then false
    "left": ("red circle", "blue square"),
    "right": ("blue square", "red circle"),
    "above": ("red circle", "green triangle"),
    "below": ("green triangle", "red circle"),
    "bigger": ("red circle", "blue square"),
    "smaller": ("blue square", "red circle"),
}

CASES: dict[str, list[tuple[str, set[str]]]] = {  # claim kind -> (caption, the kinds of its false claims)
    "exists": [
        ("There is a red circle.", set()),
        ("A small blue square.", set()),
        ("A big blue square.", {"exists"}),  # the blue square is small
        ("A triangle in the picture.", set()),
        ("A hexagon in the picture.", {"exists"}),
        ("A purple object.", {"exists"}),
        ("Yellow stars.", set()),  # a bare plural: at least two
        ("Red circles.", {"exists"}),  # there is only one
        ("The yellow stars.", set()),
        ("The red circles.", {"exists"}),
    ],
    "unique": [
        ("The red circle.", set()),
        ("The big yellow star.", set()),
        ("The yellow star.", {"unique"}),  # there are two
        ("The star.", {"unique"}),
        ("The purple hexagon.", {"unique", "mention"}),  # there is none
    ],
    "count": [
        ("Two yellow stars.", set()),
        ("Three yellow stars.", {"count"}),
        ("One yellow star.", {"count"}),
        ("One red circle.", set()),
        ("A single blue square.", set()),
        ("A single star.", {"count"}),
        ("Only one red circle.", set()),
        ("Only one star.", {"count"}),
        ("Exactly five shapes.", set()),
        ("Exactly four shapes.", {"count"}),
        ("Three small shapes.", set()),
        ("Two small objects.", {"count"}),
        ("Two big shapes.", set()),
        ("Zero purple stars.", set()),
        ("Zero red circles.", {"count"}),
    ],
    "mention": [
        ("A red circle.", set()),
        ("A red square.", {"mention", "exists"}),  # red and square occur, not together
        ("A big blue square.", {"exists"}),  # the mention is true, the size is not
        ("A white diamond.", {"mention", "exists"}),
    ],
    "background": [
        ("A red circle on a striped background.", set()),
        ("A red circle against a stripy background.", set()),
        ("A red circle on a spotted background.", {"background"}),
        ("A red circle on a blotchy background.", {"background"}),
        ("A red circle on a mottled background.", {"background"}),
    ],
    "distinct": [  # the phrases of a list name different objects
        ("A yellow star and a yellow star.", set()),
        ("A red circle, a blue square and a green triangle.", set()),
        ("A red circle and a red circle.", {"distinct"}),
        ("A red circle and the red circle in the picture.", {"distinct"}),
        ("A red circle and a circle.", {"distinct"}),
        ("Two yellow stars and a yellow star.", {"distinct"}),
        ("Two yellow stars and a red circle.", set()),
        ("Three yellow stars and a red circle.", {"count"}),  # the count is false, not the list
    ],
    "left": [
        ("Left of a blue square there is a red circle.", set()),  # fronted: the subject after the landmark
        ("Left of a red circle there is a blue square.", {"left"}),
        ("A red circle is to the left of a green triangle.", {"left"}),  # one above the other
        ("A green triangle is to the left of a red circle.", {"left"}),
        ("The red circle is to the left of the red circle.", {"left"}),  # not of itself
        ("Left of the red circle is the red circle.", {"left"}),  # a fronted relation is no list
    ],
    "above": [
        ("Above the green triangle is the red circle.", set()),
        ("Above the red circle is the green triangle.", {"above"}),
        ("A red circle is above a blue square.", {"above"}),  # side by side
        ("A blue square is above a red circle.", {"above"}),
    ],
    "bigger": [
        ("A red circle is bigger than a blue square.", set()),
        ("A blue square is bigger than a red circle.", {"bigger"}),
        ("A green triangle is bigger than a blue square.", {"bigger"}),  # both small
        ("A red circle is bigger than a big yellow star.", {"bigger"}),  # both large
        ("A red circle is bigger than a yellow star.", set()),  # the small one
        ("A small red circle is larger than a blue square.", {"bigger", "exists"}),
    ],
    "smaller": [
        ("A blue square is smaller than a red circle.", set()),
        ("A red circle is smaller than a blue square.", {"smaller"}),
        ("A blue square is smaller than a green triangle.", {"smaller"}),  # both small
        ("A red circle is smaller than a big yellow star.", {"smaller"}),  # both large
    ],
}
CASES["right"] = [(c.replace("left", "right").replace("Left", "Right"), {"right"}) for c, _ in CASES["left"][2:]] + [
    ("Right of a red circle there is a blue square.", set()),
    ("Right of a blue square there is a red circle.", {"right"}),
]
CASES["below"] = [(c.replace("above", "below"), {"below"}) for c, _ in CASES["above"][2:]] + [
    ("Below the red circle is the green triangle.", set()),
    ("Below the green triangle is the red circle.", {"below"}),
]


def _relation_cases() -> list[tuple[str, str, set[str]]]:
    """Each relation phrase the judge knows, between a pair where it holds, in both orders."""
    out: list[tuple[str, str, set[str]]] = []
    for words, kind in RELATIONS:
        a, b = TRUE_PAIR[kind]
        phrase = " ".join(words)
        out.append((kind, f"A {a} is {phrase} a {b}.", set()))
        out.append((kind, f"A {b} is {phrase} a {a}.", {kind}))
    return out


ALL_CASES = [(kind, caption, failing) for kind, cases in CASES.items() for caption, failing in cases]


def _check(kind: str, caption: str, failing: set[str]) -> None:
    j = judge(tokenize(caption), SCENE, BACKGROUND)
    made = {c.kind for c in j.claims}
    wrong = {c.kind for c in j.claims if not c.holds}
    assert j.parsed, caption
    assert kind in made, f"{caption!r} makes no {kind} claim: {made}"
    assert wrong == failing, f"{caption!r}: false claims {wrong}, expected {failing}"
    assert j.true == (not failing)


def test_every_claim_kind_has_a_true_and_a_false_case() -> None:
    for kind in KINDS:
        outcomes = {not failing for k, _, failing in ALL_CASES + _relation_cases() if k == kind}
        assert outcomes == {True, False}, kind


@pytest.mark.parametrize("kind,caption,failing", ALL_CASES)
def test_each_claim_kind_is_judged_by_its_meaning(kind: str, caption: str, failing: set[str]) -> None:
    _check(kind, caption, failing)


@pytest.mark.parametrize("kind,caption,failing", _relation_cases())
def test_each_relation_phrase_holds_in_one_order_only(kind: str, caption: str, failing: set[str]) -> None:
    _check(kind, caption, failing)


def test_the_background_is_judged_against_the_drawn_kind() -> None:
    assert judge(tokenize("a red circle on a spotted background"), SCENE, "blotches").true
    assert not judge(tokenize("a red circle on a striped background"), SCENE, "blotches").true
    j = judge(tokenize("a red circle on a noisy background"), SCENE, "blotches")  # any kind is noisy
    assert j.true and "background" not in {c.kind for c in j.claims}


@pytest.mark.parametrize(
    "caption", ["red above", "A red circle is to the left of.", "Left of a red circle.", "A red circle and two.",
                "Right red circle and a red circle.", "A red circle on the left."]
)
def test_a_caption_that_does_not_parse_is_not_true(caption: str) -> None:
    j = judge(tokenize(caption), SCENE, BACKGROUND)
    assert not j.parsed and not j.true


def _random_scenes(n_scenes: int) -> list[tuple[list[ShapeObject], str]]:
    """(objects, background) of scenes drawn at several image sizes, with 1 to 6 objects."""
    out = []
    for i in range(n_scenes):
        rng = np.random.default_rng([7, i])
        objects = sample_scene(rng, int(rng.integers(1, 7)), (64, 128, 200)[i % 3])
        out.append((objects, BACKGROUNDS[i % len(BACKGROUNDS)]))
    return out


def test_every_reference_the_grammar_writes_is_entirely_true() -> None:
    made: Counter[str] = Counter()
    for i, (objects, background) in enumerate(_random_scenes(1500)):
        truth = [o.to_json() for o in objects]
        for sentence in captions(objects, background, 5, random.Random(i)):
            j = judge(tokenize(sentence), truth, background)
            assert j.parsed and j.true, (sentence, truth, [c for c in j.claims if not c.holds])
            made.update(c.kind for c in j.claims)
    assert KINDS <= set(made), f"the references never make a {KINDS - set(made)} claim"


def test_every_region_reference_is_true_of_its_object() -> None:
    for objects, background in _random_scenes(150):
        for obj in objects:
            for phrase in region_phrases(obj):
                j = judge(tokenize(phrase), [obj.to_json()], background)
                assert j.true and [c.kind for c in j.claims].count("mention") == 1, phrase
