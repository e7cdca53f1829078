"""Captions of the shapes world: a small grammar whose sentences are true of the scene.

Meaning of the phrases (what the tests check):
- "a red circle": at least one object matches; "the red circle": exactly one does;
  "two red circles", "one red circle", "a single red circle": exactly that many match.
  A phrase without a shape word ("a red shape", "two objects") matches any shape.
- "A left of B": some A's box ends left of where some B's box starts (x1(A) <= x0(B));
  likewise right of, above (y1(A) <= y0(B)) and below.
- "A bigger than B": some A is large and some B is small.
- background words ("striped", "spotted", ...) name the kind of background drawn.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from dvsa.data.shapes_scene import ShapeObject
from dvsa.data.vocab import tokenize

NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six")
SHAPE_WORDS: dict[str, tuple[tuple[str, str], ...]] = {
    "circle": (("circle", "circles"), ("disc", "discs")),
    "square": (("square", "squares"), ("box", "boxes")),
    "triangle": (("triangle", "triangles"),),
    "star": (("star", "stars"),),
    "diamond": (("diamond", "diamonds"),),
    "cross": (("cross", "crosses"),),
    "hexagon": (("hexagon", "hexagons"),),
}
GENERIC_WORDS: tuple[tuple[str, str], ...] = (("shape", "shapes"), ("object", "objects"))
SIZE_WORDS = {"small": ("small", "little", "tiny"), "large": ("large", "big")}
BACKGROUND_WORDS = {"stripes": ("striped", "stripy"), "blotches": ("spotted", "blotchy", "mottled")}
ANY_BACKGROUND_WORDS = ("noisy", "textured")
RELATION_WORDS = {
    "left": ("to the left of", "left of", "on the left of"),
    "right": ("to the right of", "right of", "on the right of"),
    "above": ("above", "over"),
    "below": ("below", "under", "beneath"),
}
MIN_TOKENS = 3  # no bare "a star."
MAX_TOKENS = 16  # the default preprocess.max_length: captions are never truncated


@dataclass(frozen=True)
class Concept:
    """What a noun phrase says of an object; None = not said."""

    shape: str | None
    color: str | None
    size: str | None

    def matches(self, obj: ShapeObject) -> bool:
        return all(
            want is None or want == have
            for want, have in ((self.shape, obj.shape), (self.color, obj.color), (self.size, obj.size))
        )

    def extension(self, objects: list[ShapeObject]) -> list[ShapeObject]:
        return [o for o in objects if self.matches(o)]


def relation(a: ShapeObject, b: ShapeObject) -> str | None:
    """The clearest strict spatial relation of a to b ("left", "right", "above", "below"), if any."""
    (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = a.box, b.box
    (acx, acy), (bcx, bcy) = a.center, b.center
    held = {"left": ax1 <= bx0, "right": bx1 <= ax0, "above": ay1 <= by0, "below": by1 <= ay0}
    distance = {"left": bcx - acx, "right": acx - bcx, "above": bcy - acy, "below": acy - bcy}
    candidates = [r for r, ok in held.items() if ok]
    return max(candidates, key=lambda r: distance[r]) if candidates else None


def describe(obj: ShapeObject, r: random.Random, size_prob: float = 0.25) -> Concept:
    """A concept true of `obj`: usually colour + shape, sometimes one of them, sometimes the size."""
    color = obj.color if r.random() < 0.9 else None
    shape = obj.shape if color is None or r.random() < 0.9 else None
    size = obj.size if r.random() < size_prob else None
    return Concept(shape, color, size)


def noun_phrase(
    concept: Concept, objects: list[ShapeObject], r: random.Random, count: int | None = None,
    definite: bool = True, numeral: bool = False,
) -> str:
    """'a red circle', 'the big star' (if unique and `definite`), 'two blue boxes' / 'a single disc'
    (an exact count; `numeral` always says it with a number word)."""
    words = [r.choice(SIZE_WORDS[concept.size])] if concept.size else []
    words += [concept.color] if concept.color else []
    nouns = SHAPE_WORDS[concept.shape] if concept.shape else GENERIC_WORDS
    words.append(r.choice(nouns)[1 if count is not None and count > 1 else 0])
    if count is None:
        unique = len(concept.extension(objects)) == 1
        det = "the" if definite and unique and r.random() < 0.5 else ("an" if words[0][0] in "aeiou" else "a")
    elif count == 1 and not numeral:
        det = r.choice(("one", "a single", "only one"))
    else:
        det = NUMBER_WORDS[count]
    return " ".join([det, *words])


def _join(phrases: list[str]) -> str:
    return phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]


def background_phrase(background: str, r: random.Random) -> str:
    word = r.choice(BACKGROUND_WORDS[background] + ANY_BACKGROUND_WORDS)
    return f"{r.choice(('on', 'against'))} a {word} background"


LIST_TEMPLATES = (
    "{np}", "{np} {bg}", "there {be} {np}", "an image of {np}", "a picture of {np}", "a picture with {np}",
    "a scene with {np}", "this image shows {np}", "the picture contains {np}", "i can see {np}",
    "{np} in the image", "{np} in the picture", "{bgnp} with {np}",
)
COUNT_TEMPLATES = (
    "there {be} {np}", "{np}", "{np} {bg}", "the image contains {np}", "the picture shows {np}",
    "i can see {np}", "{np} in the image", "we see {np} here", "exactly {np}",
)
RELATION_TEMPLATES = (
    "{a} is {rel} {b}", "{a} {rel} {b}", "{a} sits {rel} {b}", "{a} lies {rel} {b}", "there is {a} {rel} {b}",
    "{rel} {b} there is {a}", "{rel} {b} is {a}", "{a} {rel} {b} {bg}", "{a} can be seen {rel} {b}",
)
COMPARISON_TEMPLATES = ("{a} is {cmp} {b}", "{a} looks {cmp} {b}", "{a} appears {cmp} {b}")


def caption_list(objects: list[ShapeObject], background: str, r: random.Random) -> str | None:
    """Some of the objects (not always all), a repeated kind sometimes as an exact count; no two
    phrases can refer to the same object."""
    template = r.choice(LIST_TEMPLATES)
    phrases: list[str] = []
    used: list[ShapeObject] = []
    plural = False
    for obj in r.sample(objects, r.randint(1, min(3, len(objects)))):
        concept = describe(obj, r)
        matching = concept.extension(objects)
        if any(o in used for o in matching):
            continue
        used += matching
        if len(matching) > 1 and r.random() < 0.6:
            phrases.append(noun_phrase(concept, objects, r, count=len(matching)))
            plural = True
        else:
            phrases.append(noun_phrase(concept, objects, r, definite=not template.startswith("there")))
    bgnp = background_phrase(background, r).split(" ", 1)[1]
    return template.format(
        np=_join(phrases), bg=background_phrase(background, r), be="are" if plural or len(phrases) > 1 else "is",
        bgnp=bgnp,
    )


def caption_count(objects: list[ShapeObject], background: str, r: random.Random) -> str | None:
    """The exact number of objects of one kind (colour + shape, shape, colour, size, or all)."""
    obj = r.choice(objects)
    shape, color, size = r.choice([(1, 1, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 0, 1), (0, 0, 0)])
    concept = Concept(obj.shape if shape else None, obj.color if color else None, obj.size if size else None)
    count = len(concept.extension(objects))
    template = r.choice(COUNT_TEMPLATES)
    return template.format(
        np=noun_phrase(concept, objects, r, count=count, numeral=template.startswith("exactly")),
        be="are" if count > 1 else "is",
        bg=background_phrase(background, r),
    )


def caption_relation(objects: list[ShapeObject], background: str, r: random.Random) -> str | None:
    """Where one object is relative to another (to the left of / right of / above / below)."""
    pairs = [(a, b, rel) for a in objects for b in objects if a is not b and (rel := relation(a, b))]
    if not pairs:
        return None
    a, b, rel = r.choice(pairs)
    template = r.choice(RELATION_TEMPLATES)
    return template.format(
        a=noun_phrase(describe(a, r, 0.15), objects, r, definite="there is {a}" not in template),
        b=noun_phrase(describe(b, r, 0.15), objects, r),
        rel=r.choice(RELATION_WORDS[rel]), bg=background_phrase(background, r),
    )


def caption_comparison(objects: list[ShapeObject], background: str, r: random.Random) -> str | None:
    """A large object compared with a small one (bigger than / smaller than)."""
    pairs = [(a, b) for a in objects for b in objects if a.size == "large" and b.size == "small"]
    if not pairs:
        return None
    big, small = r.choice(pairs)
    big_np = noun_phrase(describe(big, r, 0.0), objects, r)
    small_np = noun_phrase(describe(small, r, 0.0), objects, r)
    if r.random() < 0.5:
        a, b, cmp = big_np, small_np, r.choice(("bigger than", "larger than"))
    else:
        a, b, cmp = small_np, big_np, "smaller than"
    return r.choice(COMPARISON_TEMPLATES).format(a=a, b=b, cmp=cmp)


FAMILIES: tuple[tuple[Callable[[list[ShapeObject], str, random.Random], str | None], float], ...] = (
    (caption_list, 0.35), (caption_count, 0.25), (caption_relation, 0.3), (caption_comparison, 0.1),
)


def to_raw(sentence: str) -> str:
    """Capital first letter and a full stop."""
    return sentence[0].upper() + sentence[1:] + "."


def captions(objects: list[ShapeObject], background: str, n: int, r: random.Random) -> list[str]:
    """`n` distinct raw sentences (MIN_TOKENS..MAX_TOKENS words each) true of the scene."""
    funcs, weights = zip(*FAMILIES)
    out: list[str] = []
    for _ in range(200 * n):
        if len(out) == n:
            break
        sentence = r.choices(funcs, weights)[0](objects, background, r)
        if sentence is None:
            continue
        raw = to_raw(sentence)
        if raw not in out and MIN_TOKENS <= len(tokenize(raw)) <= MAX_TOKENS:
            out.append(raw)
    # a tiny scene could run out of distinct sentences: repeat the first ones
    return out + [out[k % len(out)] for k in range(n - len(out))]
