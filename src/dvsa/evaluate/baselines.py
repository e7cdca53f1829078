"""The nearest-neighbour baseline of the paper's Table 2: a test image takes a caption of the training image
whose region-0 (whole image) CNN feature is closest in cosine similarity: of that image's captions, the
consensus one (highest mean n-gram agreement with the others, as Devlin et al. 2015 pick among neighbours)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from dvsa.data.labels import Labels
from dvsa.data.vocab import tokenize
from dvsa.errors import InputError
from dvsa.regions.store import RegionStore


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def nearest_neighbours(
    store: RegionStore, queries: Sequence[int] | np.ndarray, pool: Sequence[int] | np.ndarray, chunk: int = 1024
) -> np.ndarray:
    """(Q,) the row of `pool` nearest to each row of `queries` by cosine similarity of region 0.

    The pool is read in chunks of `chunk` rows, so memory grows with Q and the chunk, not with the pool.
    Ties go to the earlier pool row.
    """
    queries, pool = np.asarray(queries, dtype=np.int64), np.asarray(pool, dtype=np.int64)
    if len(pool) == 0:
        raise ValueError("empty pool of training images")
    q = _unit(store.feats(queries, region=0))  # (Q, D)
    best = np.full(len(queries), -np.inf)
    best_row = np.zeros(len(queries), dtype=np.int64)
    for s in range(0, len(pool), chunk):
        rows = pool[s : s + chunk]
        sim = q @ _unit(store.feats(rows, region=0)).T  # (Q, C)
        arg = sim.argmax(axis=1)  # (Q,)
        top = sim[np.arange(len(queries)), arg]
        better = top > best
        best[better], best_row[better] = top[better], rows[arg[better]]
    return best_row


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
    captions = []
    for j in nearest_neighbours(store, rows, train_rows):
        raws = [s["raw"] for s in dataset["images"][int(j)]["sentences"]]
        captions.append(raws[consensus_caption(raws)])
    return captions
