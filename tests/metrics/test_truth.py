"""The truth of captions: the world's own captions are all true, and each kind of false claim is caught."""

from __future__ import annotations

import pytest

from dvsa.data.config import ShapesParams
from dvsa.data.shapes import make_scene
from dvsa.data.vocab import tokenize
from dvsa.metrics.truth import TruthMeter, judge

SCENE = [  # two red circles (one big), a small blue square left of them, a large yellow star below
    {"box": [10, 10, 30, 30], "color": "blue", "shape": "square", "size": "small"},
    {"box": [50, 10, 90, 50], "color": "red", "shape": "circle", "size": "large"},
    {"box": [95, 12, 115, 32], "color": "red", "shape": "circle", "size": "small"},
    {"box": [40, 70, 80, 110], "color": "yellow", "shape": "star", "size": "large"},
]


@pytest.fixture(scope="module")
def references() -> list[tuple[list[dict], list[str], str]]:
    params = ShapesParams(n_train=120, n_val=1, n_test=1)
    out = []
    for i in range(120):
        s = make_scene(11, i, params)
        out.append(([o.to_json() for o in s.objects], s.captions, s.background))
    return out


def test_the_references_are_entirely_true(references) -> None:  # type: ignore[no-untyped-def]
    meter = TruthMeter()
    for objects, captions, background in references:
        for c in captions:
            meter.add(tokenize(c), objects, background)
    s = meter.summary()
    assert s["mention_precision"] == 1.0 and s["captions_true"] == 1.0
    assert s["count_precision"] == 1.0 and s["relation_precision"] == 1.0
    assert s["n_unparsed"] == 0 and s["n_mentions"] > 300


def test_a_wrong_caption_scores_below_the_references(references) -> None:  # type: ignore[no-untyped-def]
    meter = TruthMeter()
    for objects, _, background in references:
        absent = next(c for c in ("orange", "purple", "green", "white") if all(o["color"] != c for o in objects))
        meter.add(tokenize(f"there is a {absent} {objects[0]['shape']}"), objects, background)
    s = meter.summary()
    assert s["mention_precision"] == 0.0 and s["captions_true"] == 0.0


@pytest.mark.parametrize(
    "caption,true,failing",
    [
        ("A blue square is to the left of a red circle.", True, set()),
        ("A red circle is to the left of a blue square.", False, {"left"}),
        ("Left of the big red disc there is a blue box.", True, set()),
        ("Left of the blue box there is a red disc.", False, {"left"}),
        ("The yellow star is below the blue square.", True, set()),
        ("Two red circles and a star.", True, set()),
        ("Three red circles.", False, {"count"}),
        ("The red circle is above the yellow star.", False, {"unique"}),  # there are two red circles
        ("A small blue square is smaller than a big red circle.", True, set()),
        ("A small red disc is smaller than a small red disc.", False, {"smaller"}),
        ("A blue star on a striped background.", False, {"mention", "exists", "background"}),
        ("There is a green triangle.", False, {"mention", "exists"}),
        ("Exactly four shapes.", True, set()),
        ("Exactly five shapes.", False, {"count"}),
        ("A single yellow star.", True, set()),
        ("Only one red circle.", False, {"count"}),
    ],
)
def test_each_claim_is_judged_by_its_meaning(caption: str, true: bool, failing: set[str]) -> None:
    j = judge(tokenize(caption), SCENE, "blotches")
    assert j.parsed
    assert j.true == true
    assert {c.kind for c in j.claims if not c.holds} == failing


def test_unparsed_captions_are_not_true() -> None:
    j = judge(tokenize("red red above"), SCENE, "blotches")
    assert not j.parsed and not j.true


def test_objects_named_counts_each_true_object_once() -> None:
    meter = TruthMeter()
    meter.add(tokenize("a red circle and a red disc and a purple star"), SCENE, "blotches")
    s = meter.summary()
    assert s["objects_named"] == pytest.approx(2 / 4)  # both red circles, not the square or the star
    assert s["mention_precision"] == pytest.approx(2 / 3)


def test_token_marks_show_true_mentions_and_false_claims() -> None:
    j = judge(tokenize("a red circle left of a green star"), SCENE, "blotches")
    marks = j.token_marks()
    assert marks[:3] == [True, True, True]  # "a red circle": a true mention, its relation aside
    assert marks[-3:] == [False, False, False]  # "a green star" is false
