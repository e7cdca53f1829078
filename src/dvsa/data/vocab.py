"""Tokens and vocabulary, as neuraltalk2's prepro.py builds them.

Index 0 is padding / END, words are 1..V, and ``UNK`` stands for words seen at most
``word_count_threshold`` times.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

UNK = "UNK"
_PUNCT = re.compile(r"[^\w\s]", flags=re.UNICODE)


def tokenize(raw: str) -> list[str]:
    """Lowercase, strip punctuation, split on whitespace (non-ASCII letters are kept)."""
    return _PUNCT.sub(" ", raw.lower()).split()


def build_vocab(token_lists: Iterable[Sequence[str]], word_count_threshold: int) -> tuple[list[str], Counter[str]]:
    """Words whose count is greater than the threshold, most frequent first, plus UNK if any was dropped."""
    counts: Counter[str] = Counter()
    for tokens in token_lists:
        counts.update(tokens)
    kept = sorted((w for w, n in counts.items() if n > word_count_threshold), key=lambda w: (-counts[w], w))
    if len(kept) < len(counts):
        kept.append(UNK)
    return kept, counts


def encode(tokens: Sequence[str], word_to_ix: dict[str, int], max_length: int) -> np.ndarray:
    """Token list -> (max_length,) uint32, words 1-indexed, unknown words -> UNK, zero-padded, truncated."""
    out = np.zeros(max_length, dtype=np.uint32)
    unk = word_to_ix.get(UNK, 0)
    for k, w in enumerate(tokens[:max_length]):
        out[k] = word_to_ix.get(w, unk)
    return out


def decode(seq: Iterable[int], ix_to_word: dict[int, str]) -> str:
    """Indices -> sentence; stops at the first 0 (END / padding)."""
    words = []
    for ix in seq:
        ix = int(ix)
        if ix == 0:
            break
        words.append(ix_to_word[ix])
    return " ".join(words)
