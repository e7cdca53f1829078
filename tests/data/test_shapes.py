"""The shapes world: determinism, the dataset dict, geometry, pixels and the truth of the captions.

The captions are checked with a parser written here from the grammar's stated meaning (see
dvsa.data.shapes_grammar), not with the grammar's own code.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dvsa.data.config import ShapesParams
from dvsa.data.shapes import generate, make_scene
from dvsa.data.shapes_scene import COLORS
from dvsa.data.vocab import tokenize
from dvsa.errors import ParamsError

SHAPE_NOUNS = {
    "circle": "circle", "circles": "circle", "disc": "circle", "discs": "circle",
    "square": "square", "squares": "square", "box": "square", "boxes": "square",
    "triangle": "triangle", "triangles": "triangle", "star": "star", "stars": "star",
    "diamond": "diamond", "diamonds": "diamond", "cross": "cross", "crosses": "cross",
    "hexagon": "hexagon", "hexagons": "hexagon",
    "shape": None, "shapes": None, "object": None, "objects": None,
}
PLURALS = {w for w in SHAPE_NOUNS if w.endswith("s") and w not in ("cross",)}
SIZE_ADJ = {"small": "small", "little": "small", "tiny": "small", "large": "large", "big": "large"}
NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "single": 1}
RELATIONS = [
    (("to", "the", "left", "of"), "left"), (("on", "the", "left", "of"), "left"), (("left", "of"), "left"),
    (("to", "the", "right", "of"), "right"), (("on", "the", "right", "of"), "right"), (("right", "of"), "right"),
    (("above",), "above"), (("over",), "above"), (("below",), "below"), (("under",), "below"),
    (("beneath",), "below"), (("bigger", "than"), "bigger"), (("larger", "than"), "bigger"),
    (("smaller", "than"), "smaller"),
]
BACKGROUND_ADJ = {"striped": "stripes", "stripy": "stripes", "spotted": "blotches", "blotchy": "blotches",
                  "mottled": "blotches"}
PARAMS = ShapesParams(n_train=5, n_val=2, n_test=3, captions_per_image=5)


def _holds(rel: str, a: dict, b: dict) -> bool:
    (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = a["box"], b["box"]
    return {
        "left": ax1 <= bx0, "right": bx1 <= ax0, "above": ay1 <= by0, "below": by1 <= ay0,
        "bigger": a["size"] == "large" and b["size"] == "small",
        "smaller": a["size"] == "small" and b["size"] == "large",
    }[rel]


def _parse(tokens: list[str]) -> list[tuple[str, object]]:
    """Tokens -> items ("np", {count, definite, size, color, shape}) and ("rel", name)."""
    items: list[tuple[str, object]] = []
    i = 0
    while i < len(tokens):
        rel = next((name for words, name in RELATIONS if tuple(tokens[i:i + len(words)]) == words), None)
        if rel is not None:
            items.append(("rel", rel))
            i += next(len(w) for w, n in RELATIONS if tuple(tokens[i:i + len(w)]) == w)
            continue
        if tokens[i] in SHAPE_NOUNS and not (i + 1 < len(tokens) and tokens[i + 1] == "background"):
            items.append(("np", _noun_phrase(tokens, i)))
        i += 1
    return items


def _noun_phrase(tokens: list[str], i: int) -> dict:
    np_ = {"shape": SHAPE_NOUNS[tokens[i]], "color": None, "size": None, "count": None, "definite": False}
    j = i - 1
    if j >= 0 and tokens[j] in COLORS:
        np_["color"] = tokens[j]
        j -= 1
    if j >= 0 and tokens[j] in SIZE_ADJ:
        np_["size"] = SIZE_ADJ[tokens[j]]
        j -= 1
    det = tokens[j] if j >= 0 else None
    assert det in NUMBERS or det in ("a", "an", "the"), f"no determiner before {tokens[i]!r} in {tokens}"
    if det in NUMBERS:
        np_["count"] = NUMBERS[det]
    np_["definite"] = det == "the"
    assert (tokens[i] in PLURALS) == (np_["count"] is not None and np_["count"] > 1), tokens
    return np_


def _extension(np_: dict, objects: list[dict]) -> list[dict]:
    return [o for o in objects if all(np_[k] is None or np_[k] == o[k] for k in ("shape", "color", "size"))]


def _check_caption(tokens: list[str], objects: list[dict], background: str) -> Counter:
    """Assert that the caption is true of the objects; return which kinds of claims were checked."""
    checked: Counter = Counter()
    items = _parse(tokens)
    assert any(kind == "np" for kind, _ in items), tokens
    for kind, np_ in items:
        if kind != "np":
            continue
        n = len(_extension(np_, objects))
        if np_["count"] is not None:
            assert n == np_["count"], (tokens, objects)
            checked["count"] += 1
        elif np_["definite"]:
            assert n == 1, (tokens, objects)
            checked["definite"] += 1
        else:
            assert n >= 1, (tokens, objects)
            checked["exists"] += 1
    for k, (kind, rel) in enumerate(items):
        if kind != "rel":
            continue
        subject, landmark = (items[2], items[1]) if k == 0 else (items[k - 1], items[k + 1])
        assert subject[0] == "np" and landmark[0] == "np", tokens
        subjects, landmarks = _extension(subject[1], objects), _extension(landmark[1], objects)
        pairs = [(a, b) for a in subjects for b in landmarks if a is not b]
        assert any(_holds(rel, a, b) for a, b in pairs), (tokens, objects)
        checked[rel] += 1
    for word in tokens:
        assert word not in COLORS or any(o["color"] == word for o in objects), (tokens, objects)
        assert SHAPE_NOUNS.get(word) is None or any(o["shape"] == SHAPE_NOUNS[word] for o in objects), tokens
        assert BACKGROUND_ADJ.get(word, background) == background, (tokens, background)
    return checked


@pytest.fixture(scope="module")
def scenes() -> list[tuple[dict, list[str], str]]:
    """80 scenes as (objects json, raw captions, background), without writing files."""
    params = ShapesParams(n_train=80, n_val=1, n_test=1)
    out = []
    for i in range(80):
        s = make_scene(7, i, params)
        out.append(([o.to_json() for o in s.objects], s.captions, s.background))
    return out


def test_same_seed_gives_identical_files_and_json(tmp_path: Path) -> None:
    def png(run: str, img: dict) -> bytes:
        return (tmp_path / run / "images" / img["filename"]).read_bytes()

    a = generate(tmp_path / "a", PARAMS, seed=3)
    b = generate(tmp_path / "b", PARAMS, seed=3)
    c = generate(tmp_path / "c", PARAMS, seed=4)
    assert json.dumps(a) == json.dumps(b)
    assert all(png("a", img) == png("b", img) for img in a["images"])
    assert all(png("a", img) != png("c", img) for img in a["images"]) and json.dumps(a) != json.dumps(c)


def test_dataset_dict_counts_splits_and_sentids(tmp_path: Path) -> None:
    data = generate(tmp_path, PARAMS, seed=1)
    images = data["images"]
    assert data["dataset"] == "shapes"
    assert [i["split"] for i in images] == ["train"] * 5 + ["val"] * 2 + ["test"] * 3
    assert [i["imgid"] for i in images] == list(range(10))
    all_sentids = [s for i in images for s in i["sentids"]]
    assert all_sentids == list(range(50))
    for img in images:
        assert img["filepath"] == "" and img["filename"] == f"{img['imgid']:06d}.png"
        with Image.open(tmp_path / "images" / img["filename"]) as im:
            assert im.mode == "RGB" and im.size == (128, 128)
        assert [s["sentid"] for s in img["sentences"]] == img["sentids"]
        assert len(img["sentences"]) == PARAMS.captions_per_image
        assert 1 <= len(img["objects"]) <= PARAMS.max_objects
        for s in img["sentences"]:
            assert s["imgid"] == img["imgid"] and s["tokens"] == tokenize(s["raw"])
            assert s["raw"][0].isupper() and s["raw"].endswith(".") and 3 <= len(s["tokens"]) <= 16


def test_extra_train_images_leave_val_and_test_as_they_were(tmp_path: Path) -> None:
    base = generate(tmp_path / "base", PARAMS, seed=1)["images"]
    more = generate(tmp_path / "more", replace(PARAMS, n_train_extra=4), seed=1)["images"]
    assert [i["split"] for i in more] == ["train"] * 5 + ["val"] * 2 + ["test"] * 3 + ["train"] * 4
    assert json.dumps(more[:10]) == json.dumps(base)  # the same scenes, captions and sentids
    assert all((tmp_path / "more" / "images" / i["filename"]).read_bytes()
               == (tmp_path / "base" / "images" / i["filename"]).read_bytes() for i in base)


@pytest.mark.parametrize("size", [48, 128, 256])
def test_boxes_inside_image_and_apart(size: int) -> None:
    params = ShapesParams(image_size=size, min_objects=3, max_objects=6)
    for i in range(30):
        objects = make_scene(11, i, params).objects
        assert objects
        for k, o in enumerate(objects):
            x0, y0, x1, y1 = o.box
            assert 0 <= x0 < x1 <= size and 0 <= y0 < y1 <= size
            for p in objects[k + 1:]:
                a, b = o.box, p.box
                assert a[2] < b[0] or b[2] < a[0] or a[3] < b[1] or b[3] < a[1], (a, b)


def test_object_pixels_have_the_object_colour() -> None:
    names = list(COLORS)
    palette = np.array([COLORS[c] for c in names], dtype=float)  # (7, 3)
    checked = 0
    for i in range(40):
        scene = make_scene(5, i, ShapesParams())
        pixels = np.asarray(scene.image, dtype=float)  # (S, S, 3)
        for o in scene.objects:
            cx, cy = (o.box[0] + o.box[2]) // 2, (o.box[1] + o.box[3]) // 2
            mean = pixels[cy - 1:cy + 2, cx - 1:cx + 2].reshape(-1, 3).mean(0)
            assert names[int(np.argmin(((palette - mean) ** 2).sum(1)))] == o.color, (o, mean)
            checked += 1
    assert checked > 60


def test_background_is_textured_not_flat() -> None:
    scene = make_scene(2, 0, ShapesParams(min_objects=1, max_objects=1))
    pixels = np.asarray(scene.image, dtype=float)
    mask = np.ones(pixels.shape[:2], bool)
    x0, y0, x1, y1 = scene.objects[0].box
    mask[y0:y1, x0:x1] = False
    assert pixels[mask].std(0).min() > 8


def test_every_caption_is_true_of_its_scene(scenes) -> None:
    checked: Counter = Counter()
    for objects, raws, background in scenes:
        for raw in raws:
            checked += _check_caption(tokenize(raw), objects, background)
    for kind in ("count", "definite", "exists", "left", "right", "above", "below", "bigger", "smaller"):
        assert checked[kind] >= 5, checked


def test_checker_rejects_false_captions() -> None:
    objects = [{"shape": "circle", "color": "red", "size": "large", "box": [10, 10, 40, 40]},
               {"shape": "square", "color": "blue", "size": "small", "box": [60, 60, 80, 80]}]
    for false in ("A red circle is to the right of a blue square.", "There are two red circles.",
                  "A green star.", "The red circle is smaller than the blue box.", "A blue box above a red disc.",
                  "A red circle on a spotted background."):
        with pytest.raises(AssertionError):
            _check_caption(tokenize(false), objects, "stripes")
    _check_caption(tokenize("A red circle is above the small blue box on a striped background."), objects, "stripes")


def test_caption_language_is_varied(scenes) -> None:
    raws = [raw for _, captions, _ in scenes for raw in captions]
    tokens = [tokenize(r) for r in raws]
    words = Counter(w for t in tokens for w in t)
    starts = {tuple(t[:3]) for t in tokens}
    assert len(raws) == 400 and len(set(raws)) > 380
    assert len(words) >= 50, sorted(words)
    assert len(starts) >= 40, len(starts)
    for synonyms in (("big", "large"), ("small", "little", "tiny"), ("box", "square"), ("disc", "circle")):
        assert all(words[w] > 0 for w in synonyms), synonyms
    assert sum(len(set(c)) for _, c, _ in scenes) == 400  # the five captions of an image differ


def test_scenes_cover_the_world(scenes) -> None:
    objects = [o for objs, _, _ in scenes for o in objs]
    assert {o["shape"] for o in objects} == {"circle", "square", "triangle", "star", "diamond", "cross", "hexagon"}
    assert {o["color"] for o in objects} == set(COLORS)
    assert {o["size"] for o in objects} == {"small", "large"}
    assert {len(objs) for objs, _, _ in scenes} == {1, 2, 3, 4}
    assert {bg for _, _, bg in scenes} == {"stripes", "blotches"}


def test_min_objects_above_max_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match="min_objects"):
        generate(tmp_path, ShapesParams(min_objects=4, max_objects=2), seed=0)
