"""The truth of captions on the shapes world: is what a caption says true of the image's objects?

Judged by the meaning the world's grammar states (dvsa.data.shapes_grammar), read from the words, never by
comparing with the generator's sentences:
- a noun phrase is [determiner] [size] [colour] noun; the noun is a shape word (circle/disc, square/box, …)
  or a generic one (shape, object). "a red circle": at least one object matches; "the red circle": exactly
  one does; "two red circles", "one / a single / only one red circle", "exactly four shapes": exactly that
  many match; a plural without a number ("red circles", "the red circles"): at least two do.
- the noun phrases of a list ("A and B", "A, B and C") name different objects: each can have as many
  objects of its own as it says (a phrase that names more objects than there are is the phrase's own
  falsehood, not the list's).
- "A left of B" (and to the left of, on the left of, right of, above / over, below / under / beneath): some
  A's box ends where some B's begins (x1(A) <= x0(B); likewise for the others); "A bigger / larger than B":
  some A is large and some B small, "A smaller than B" the reverse. A fronted relation ("left of B there is
  A", "above B is A") has its subject after the landmark.
- a background word (striped, spotted, …) names the kind of background drawn.

A **mention** is a noun phrase with a colour and a shape word that says the object is there ("the big red
disc", not "zero red discs"); it is true when the image has an object of that colour and shape. A caption is
**entirely true** when it parses and every claim above holds. An object is **named** by a caption when one of
its mentions has the object's colour and shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from dvsa.data.shapes_grammar import BACKGROUND_WORDS, GENERIC_WORDS, SHAPE_WORDS, SIZE_WORDS
from dvsa.data.shapes_scene import COLORS

SHAPE_NOUNS: dict[str, tuple[str | None, bool]] = {  # word -> (shape or None for generic, plural)
    **{w: (shape, k == 1) for shape, forms in SHAPE_WORDS.items() for form in forms for k, w in enumerate(form)},
    **{w: (None, k == 1) for form in GENERIC_WORDS for k, w in enumerate(form)},
}
SIZE_ADJECTIVES = {w: size for size, words in SIZE_WORDS.items() for w in words}
BACKGROUND_ADJECTIVES = {w: kind for kind, words in BACKGROUND_WORDS.items() for w in words}
COUNT_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "zero": 0}
RELATIONS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("to", "the", "left", "of"), "left"),
    (("on", "the", "left", "of"), "left"),
    (("left", "of"), "left"),
    (("to", "the", "right", "of"), "right"),
    (("on", "the", "right", "of"), "right"),
    (("right", "of"), "right"),
    (("above",), "above"),
    (("over",), "above"),
    (("below",), "below"),
    (("under",), "below"),
    (("beneath",), "below"),
    (("bigger", "than"), "bigger"),
    (("larger", "than"), "bigger"),
    (("smaller", "than"), "smaller"),
)
SPATIAL = ("left", "right", "above", "below")
# a relation word -> the one of the opposite direction: a reference with its direction flipped
FLIPPED = {"left": "right", "right": "left", "above": "below", "below": "above", "over": "under", "under": "over",
           "beneath": "above"}
# the words without which a caption makes no claim of the kind: what a captioner is asked to say
# (dvsa.caption.evaluation decodes each test image's most likely caption that holds one of them)
CLAIM_WORDS: dict[str, tuple[str, ...]] = {
    "count": ("one", "single", "two", "three", "four", "five", "six"),
    "relation": ("left", "right", "above", "over", "below", "under", "beneath"),
}


@dataclass
class NounPhrase:
    shape: str | None
    color: str | None
    size: str | None
    count: int | None  # an exact count, or None
    definite: bool
    plural: bool
    span: tuple[int, int]  # token positions [start, end)

    def extension(self, objects: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            o
            for o in objects
            if all(
                w is None or w == o[k] for k, w in (("shape", self.shape), ("color", self.color), ("size", self.size))
            )
        ]


@dataclass
class Claim:
    # mention | exists | unique | count | distinct | background | left | right | above | below | bigger | smaller
    kind: str
    holds: bool
    span: tuple[int, int]  # the tokens that make the claim


@dataclass
class Judgement:
    """What one caption claims of one image, and which claims hold."""

    tokens: list[str]
    parsed: bool  # every content word was understood and every relation has a noun phrase on both sides
    claims: list[Claim]
    named: set[tuple[str, str]]  # (colour, shape) of the true mentions

    @property
    def true(self) -> bool:
        return self.parsed and all(c.holds for c in self.claims)

    def token_marks(self) -> list[bool | None]:
        """Per token: False when it is part of a claim that does not hold, True when part of a true mention,
        None otherwise (for marking a caption in the report)."""
        marks: list[bool | None] = [None] * len(self.tokens)
        for c in self.claims:
            if c.kind == "mention" and c.holds:
                for t in range(*c.span):
                    marks[t] = True if marks[t] is None else marks[t]
        for c in self.claims:
            if not c.holds:
                for t in range(*c.span):
                    marks[t] = False
        return marks


def _holds(relation: str, a: dict[str, Any], b: dict[str, Any]) -> bool:
    (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = a["box"], b["box"]
    return {
        "left": ax1 <= bx0,
        "right": bx1 <= ax0,
        "above": ay1 <= by0,
        "below": by1 <= ay0,
        "bigger": a["size"] == "large" and b["size"] == "small",
        "smaller": a["size"] == "small" and b["size"] == "large",
    }[relation]


def _noun_phrase(tokens: list[str], i: int) -> NounPhrase:
    """The noun phrase whose noun is tokens[i], with the modifiers and determiner before it."""
    shape, plural = SHAPE_NOUNS[tokens[i]]
    color = size = None
    j = i - 1
    if j >= 0 and tokens[j] in COLORS:
        color, j = tokens[j], j - 1
    if j >= 0 and tokens[j] in SIZE_ADJECTIVES:
        size, j = SIZE_ADJECTIVES[tokens[j]], j - 1
    count, definite = None, False
    if j >= 0 and tokens[j] in COUNT_WORDS:
        count = COUNT_WORDS[tokens[j]]
        j -= 1
    elif j >= 0 and tokens[j] == "single":  # "a single"
        count, j = 1, j - 2 if j >= 1 and tokens[j - 1] == "a" else j - 1
    elif j >= 0 and tokens[j] == "the":
        definite, j = True, j - 1
    elif j >= 0 and tokens[j] in ("a", "an"):
        j -= 1
    if count == 1 and j >= 0 and tokens[j] == "only":
        j -= 1
    return NounPhrase(shape, color, size, count, definite, plural, (j + 1, i + 1))


def _least(np_: NounPhrase) -> int:
    """How many objects the phrase says there are, at least."""
    return np_.count if np_.count is not None else 2 if np_.plural else 1


def _lists(tokens: list[str], items: list[NounPhrase | tuple[str, tuple[int, int]]]) -> list[list[NounPhrase]]:
    """The runs of two or more noun phrases with nothing or "and" between neighbours ("A, B and C")."""
    runs: list[list[NounPhrase]] = []
    run: list[NounPhrase] = []
    for item in [*items, None]:
        if isinstance(item, NounPhrase) and run and tokens[run[-1].span[1] : item.span[0]] in ([], ["and"]):
            run.append(item)
            continue
        if len(run) > 1:
            runs.append(run)
        run = [item] if isinstance(item, NounPhrase) else []
    return runs


def _distinct(phrases: list[NounPhrase], objects: Sequence[dict[str, Any]]) -> bool:
    """Whether each phrase can have min(_least, its extension's size) objects, no object shared: a bipartite
    matching of the phrases' slots to the objects (augmenting paths)."""
    slots: list[list[int]] = []  # per slot: the indices of the objects it may take
    for np_ in phrases:
        ids = {id(o) for o in np_.extension(objects)}
        fits = [k for k, o in enumerate(objects) if id(o) in ids]
        slots += [fits] * min(_least(np_), len(fits))
    owner: dict[int, int] = {}  # object -> slot

    def take(slot: int, seen: set[int]) -> bool:
        for k in slots[slot]:
            if k not in seen:
                seen.add(k)
                if k not in owner or take(owner[k], seen):
                    owner[k] = slot
                    return True
        return False

    return all(take(slot, set()) for slot in range(len(slots)))


def judge(tokens: Sequence[str], objects: Sequence[dict[str, Any]], background: str | None) -> Judgement:
    """The claims of a tokenized caption and whether each holds of `objects` (dataset.json's ``objects``)."""
    tokens = list(tokens)
    items: list[NounPhrase | tuple[str, tuple[int, int]]] = []
    claims: list[Claim] = []
    parsed = True
    covered: set[int] = set()
    i = 0
    while i < len(tokens):
        rel = next(((n, len(w)) for w, n in RELATIONS if tuple(tokens[i : i + len(w)]) == w), None)
        if rel is not None:
            items.append((rel[0], (i, i + rel[1])))
            covered.update(range(i, i + rel[1]))
            i += rel[1]
            continue
        word = tokens[i]
        if word in SHAPE_NOUNS and not (i + 1 < len(tokens) and tokens[i + 1] == "background"):
            np_ = _noun_phrase(tokens, i)
            items.append(np_)
            covered.update(range(*np_.span))
        elif word in BACKGROUND_ADJECTIVES:
            claims.append(Claim("background", BACKGROUND_ADJECTIVES[word] == background, (i, i + 1)))
            covered.add(i)
        i += 1
    for t, word in enumerate(tokens):  # a colour, size or count word outside any noun phrase, or a "left" /
        # "right" outside a relation ("right white cross"): not understood
        if t not in covered and (word in COLORS or word in SIZE_ADJECTIVES or (word in COUNT_WORDS and word != "one")
                                 or word in ("left", "right")):
            parsed = False
    named: set[tuple[str, str]] = set()
    for item in items:
        if not isinstance(item, NounPhrase):
            continue
        n = len(item.extension(objects))
        if item.count is not None:
            claims.append(Claim("count", n == item.count, item.span))
        elif item.definite and not item.plural:
            claims.append(Claim("unique", n == 1, item.span))
        else:
            claims.append(Claim("exists", n >= _least(item), item.span))
        if item.color is not None and item.shape is not None and item.count != 0:
            ok = any(o["color"] == item.color and o["shape"] == item.shape for o in objects)
            claims.append(Claim("mention", ok, item.span))
            if ok:
                named.add((item.color, item.shape))
    for run in _lists(tokens, items):
        claims.append(Claim("distinct", _distinct(run, objects), (run[0].span[0], run[-1].span[1])))
    for k, item in enumerate(items):
        if isinstance(item, NounPhrase):
            continue
        relation, span = item
        if k == 0:
            subject, landmark = (items[2] if len(items) > 2 else None), (items[1] if len(items) > 1 else None)
        else:
            subject, landmark = items[k - 1], (items[k + 1] if k + 1 < len(items) else None)
        if not isinstance(subject, NounPhrase) or not isinstance(landmark, NounPhrase):
            parsed = False
            continue
        pairs = [(a, b) for a in subject.extension(objects) for b in landmark.extension(objects) if a is not b]
        claims.append(Claim(relation, any(_holds(relation, a, b) for a, b in pairs), span))
    if not any(isinstance(item, NounPhrase) for item in items):
        parsed = False
    return Judgement(tokens, parsed, claims, named)


@dataclass
class TruthMeter:
    """Accumulates judgements of captions (one or more per image) into the truth metrics."""

    captions: int = 0
    true_captions: int = 0
    unparsed: int = 0
    held: dict[str, int] = field(default_factory=dict)
    made: dict[str, int] = field(default_factory=dict)
    objects: int = 0
    named_objects: int = 0

    def add(self, tokens: Sequence[str], objects: Sequence[dict[str, Any]], background: str | None) -> Judgement:
        j = judge(tokens, objects, background)
        self.captions += 1
        self.true_captions += int(j.true)
        self.unparsed += int(not j.parsed)
        for c in j.claims:
            self.made[c.kind] = self.made.get(c.kind, 0) + 1
            self.held[c.kind] = self.held.get(c.kind, 0) + int(c.holds)
        self.objects += len(objects)
        self.named_objects += sum((o["color"], o["shape"]) in j.named for o in objects)
        return j

    def _precision(self, kinds: Sequence[str]) -> float | None:
        made = sum(self.made.get(k, 0) for k in kinds)
        return sum(self.held.get(k, 0) for k in kinds) / made if made else None

    def summary(self) -> dict[str, float | int | None]:
        """Precisions (None when no such claim was made), the fraction of entirely true captions and of the
        true objects named, and the counts behind them."""
        return {
            "mention_precision": self._precision(("mention",)),
            "captions_true": self.true_captions / self.captions if self.captions else None,
            "objects_named": self.named_objects / self.objects if self.objects else None,
            "count_precision": self._precision(("count",)),
            "relation_precision": self._precision(SPATIAL),
            "n_mentions": self.made.get("mention", 0),
            "n_counts": self.made.get("count", 0),
            "n_relations": sum(self.made.get(kind, 0) for kind in SPATIAL),
            "n_captions": self.captions,
            "n_unparsed": self.unparsed,
        }
