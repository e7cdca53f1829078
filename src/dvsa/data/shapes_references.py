"""Region references of the shapes world (§4.3's test set): several descriptions of each true object.

The paper collected region-level phrases for given boxes to score its region captioner (Table 3); here the
world's grammar writes them: a referring noun phrase that names the object's colour and shape ("a big red
circle", "the large red disc", "red circle"), with an optional size word, a determiner or none, and the
shape's synonyms. Each is true of the object alone (dvsa.metrics.truth judges it so).

They are stored in dataset.json as ``objects[k]["descriptions"]`` of val and test images only: evaluation
references, never read by the models or their training (tests/regiondesc checks it).
"""

from __future__ import annotations

import itertools
import random

from dvsa.data.shapes_grammar import SHAPE_WORDS, SIZE_WORDS
from dvsa.data.shapes_scene import ShapeObject

DESCRIPTIONS_KEY = "descriptions"  # the objects' key in dataset.json
REFERENCE_SPLITS = ("val", "test")
N_DESCRIPTIONS = 5
DETERMINERS = ("a", "the", "")  # "a" becomes "an" before a vowel


def region_phrases(obj: ShapeObject) -> list[str]:
    """Every referring phrase of `obj` the grammar allows: [det] [size word] colour shape-word."""
    sizes = ("",) + SIZE_WORDS[obj.size]
    nouns = [singular for singular, _ in SHAPE_WORDS[obj.shape]]
    out = []
    for det, size, noun in itertools.product(DETERMINERS, sizes, nouns):
        words = [w for w in (size, obj.color, noun) if w]
        if det:
            words.insert(0, "an" if det == "a" and words[0][0] in "aeiou" else det)
        out.append(" ".join(words))
    return out


def region_descriptions(obj: ShapeObject, r: random.Random, n: int = N_DESCRIPTIONS) -> list[str]:
    """`n` distinct phrases of `obj`, drawn with `r` (all of them when the grammar has fewer)."""
    phrases = region_phrases(obj)
    return r.sample(phrases, min(n, len(phrases)))
