"""The nearest-neighbour baseline of the paper's Table 2: a test image takes a caption of the training image
whose region-0 (whole image) CNN feature is closest in cosine similarity (dvsa.metrics.neighbours): of that
image's captions, the consensus one (highest mean n-gram agreement with the others, as Devlin et al. 2015
pick among neighbours)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from dvsa.data.labels import Labels
from dvsa.data.vocab import tokenize
from dvsa.errors import InputError
from dvsa.metrics.neighbours import nearest_neighbours
from dvsa.regions.store import RegionStore


def _ngrams(tokens: list[str], n_max: int = 2) -> Counter[tuple[str, ...]]:
    return Counter(tuple(tokens[i : i + n]) for n in range(1, n_max + 1) for i in range(len(tokens) - n + 1))


def consensus_caption(captions: Sequence[str]) -> int:
    """Index of the caption whose unigrams + bigrams agree most (mean F1) with the other captions; ties go to
    the earlier one."""
    grams = [_ngrams(tokenize(c)) for c in captions]
    best, best_score = 0, -1.0
    for i, gi in enumerate(grams):
        f1s = []
        for j, gj in enumerate(grams):
            if i != j:
                overlap = sum((gi & gj).values())
                total = sum(gi.values()) + sum(gj.values())
                f1s.append(2 * overlap / total if total else 0.0)
        score = float(np.mean(f1s)) if f1s else 0.0
        if score > best_score:
            best, best_score = i, score
    return best


def nearest_neighbour_captions(
    labels: Labels, store: RegionStore, dataset: dict[str, Any], rows: Sequence[int] | np.ndarray
) -> list[str]:
    """The baseline's caption for each of `rows`: the consensus caption of its nearest *training* image.

    Only train-split images are candidates, so a val or test image never takes its own (or another held-out
    image's) reference captions.
    """
    train_rows = labels.split_indices("train")
    if len(train_rows) == 0:
        raise InputError("labels: no images in the train split for the nearest-neighbour baseline")

    def region0(r: np.ndarray) -> np.ndarray:  # (n, D) whole-image features
        return store.feats(r, region=0)

    captions = []
    for j in nearest_neighbours(region0(np.asarray(rows, dtype=np.int64)), train_rows, region0):
        raws = [s["raw"] for s in dataset["images"][int(j)]["sentences"]]
        captions.append(raws[consensus_caption(raws)])
    return captions
