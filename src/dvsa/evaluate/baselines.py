"""The nearest-neighbour baseline of the paper's Table 2: a test image takes the caption of the training
image whose region-0 (whole image) CNN feature is closest in cosine similarity."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

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
