"""Repetition in generated captions: the failure cross-entropy captioners are known for ("a white cross and
the white cross" over two white crosses), and the one a CIDEr reward could pay for.

A caption repeats a noun phrase when the same two content words follow each other at two places of it
(determiners, numbers, prepositions and conjunctions are not content words): "a white cross and the white
cross" repeats "white cross"; "two white crosses" and "a red circle left of a red square" do not.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

FUNCTION_WORDS = frozenset(
    "a an the one two three four five six seven eight nine ten single only exactly zero no some several "
    "and or but of in on at to from with by than as is are was were be there here it its this that these those "
    "left right above below under over next near behind bigger smaller larger".split()
)


def repeats_phrase(tokens: Sequence[str]) -> bool:
    """Whether a tokenised caption holds the same content-word bigram twice."""
    seen: set[tuple[str, str]] = set()
    for a, b in zip(tokens, tokens[1:]):
        if a in FUNCTION_WORDS or b in FUNCTION_WORDS:
            continue
        if (a, b) in seen:
            return True
        seen.add((a, b))
    return False


def repetition_share(captions: Iterable[Sequence[str]]) -> float:
    """The share of tokenised captions that repeat a noun phrase (0.0 for none)."""
    flags = [repeats_phrase(c) for c in captions]
    return sum(flags) / len(flags) if flags else 0.0
