"""Text snippets aligned to regions: the chain MRF of eqs. (10)-(12), solved exactly by dynamic programming.

For a sentence of N words and M regions, with a_j the region of word j,
    E(a) = sum_j psi^U_j(a_j) + sum_{j<N} psi^B_j(a_j, a_{j+1})      (10)
    psi^U_j(a_j = i) = v_i . s_j                                      (11)
    psi^B_j(a_j, a_{j+1}) = beta * 1[a_j = a_{j+1}]                   (12)
and the alignment is the a that maximises E (the paper's energy with the sign that makes the best-matching
region and longer runs preferred). beta controls the snippet length: beta = 0 gives each word its own
best region, a large beta one region for the whole sentence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def mrf_energy(unary: np.ndarray, assignment: np.ndarray, beta: float) -> float:
    """E(a) of eq. (10) for unary (N, M) = v_i . s_j and an assignment (N,) of regions."""
    n = len(assignment)
    e = float(unary[np.arange(n), assignment].sum())
    return e + beta * float(np.sum(assignment[1:] == assignment[:-1]))


def viterbi(unary: np.ndarray, beta: float) -> np.ndarray:
    """The assignment (N,) int64 that maximises eq. (10), exactly, in O(N M^2).

    unary (N, M): unary[j, i] = v_i . s_j for word j and (real) region i.
    Ties are broken towards the lowest region index.
    """
    n, m = unary.shape
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    pair = beta * np.eye(m)  # (M_prev, M_next)
    best = unary[0].astype(np.float64)  # (M,) best energy of words 0..j ending in region i
    back = np.zeros((n, m), dtype=np.int64)
    for j in range(1, n):
        cand = best[:, None] + pair  # (M_prev, M_next)
        back[j] = cand.argmax(axis=0)
        best = cand.max(axis=0) + unary[j]
    out = np.empty(n, dtype=np.int64)
    out[-1] = int(best.argmax())
    for j in range(n - 1, 0, -1):
        out[j - 1] = back[j, out[j]]
    return out


@dataclass
class Segment:
    """A maximal run of words [start, end) that share one region."""

    start: int
    end: int
    region: int


def segments(assignment: np.ndarray) -> list[Segment]:
    """The maximal runs of equal regions in an assignment (N,)."""
    out: list[Segment] = []
    for j, r in enumerate(assignment.tolist()):
        if out and out[-1].region == r:
            out[-1].end = j + 1
        else:
            out.append(Segment(j, j + 1, int(r)))
    return out
