"""The one cosine nearest-neighbour search: the caption baseline of Table 2 (region 0 of training images) and
the snippet baseline of Table 3 (single training regions) both ask it for the nearest pool row."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Each row of x (n, D) scaled to unit length (a zero row stays zero)."""
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def nearest_neighbours(
    queries: np.ndarray, pool_rows: np.ndarray, read: Callable[[np.ndarray], np.ndarray], chunk: int = 1024
) -> np.ndarray:
    """(Q,) the row of `pool_rows` nearest by cosine similarity to each of the query features (Q, D).

    `read(rows)` gives the (C, D) features of pool rows; the pool is read `chunk` rows at a time, so memory
    grows with Q and the chunk, not with the pool. Ties go to the earlier pool row.
    """
    pool_rows = np.asarray(pool_rows, dtype=np.int64)
    if len(pool_rows) == 0:
        raise ValueError("empty pool of nearest-neighbour candidates")
    q = unit_rows(queries)  # (Q, D)
    best = np.full(len(q), -np.inf)
    best_row = np.zeros(len(q), dtype=np.int64)
    for s in range(0, len(pool_rows), chunk):
        rows = pool_rows[s : s + chunk]
        sim = q @ unit_rows(read(rows)).T  # (Q, C)
        arg = sim.argmax(axis=1)  # (Q,)
        top = sim[np.arange(len(q)), arg]
        better = top > best
        best[better], best_row[better] = top[better], rows[arg[better]]
    return best_row
