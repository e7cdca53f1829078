"""The MRF of eqs. (10)-(12): the DP decoder against brute force over all M^N assignments."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from dvsa.align.snippets import Segment, mrf_energy, segments, viterbi


@pytest.mark.parametrize("n,m", [(1, 3), (2, 2), (3, 4), (4, 3), (5, 4), (6, 2)])
@pytest.mark.parametrize("beta", [0.0, 0.4, 1.5, -0.5])
def test_viterbi_matches_brute_force(n: int, m: int, beta: float) -> None:
    rng = np.random.default_rng(n * 100 + m)
    for _ in range(5):
        unary = rng.normal(size=(n, m))
        best = max(mrf_energy(unary, np.array(a), beta) for a in itertools.product(range(m), repeat=n))
        got = viterbi(unary, beta)
        assert got.shape == (n,)
        assert mrf_energy(unary, got, beta) == pytest.approx(best, abs=1e-12)


def test_beta_controls_snippet_length() -> None:
    unary = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    assert viterbi(unary, 0.0).tolist() == [0, 1, 0, 1]  # each word its own best region
    assert len(set(viterbi(unary, 5.0).tolist())) == 1  # one region for the whole sentence


def test_energy_counts_equal_neighbours() -> None:
    unary = np.arange(6, dtype=float).reshape(3, 2)
    assert mrf_energy(unary, np.array([1, 1, 0]), 2.0) == pytest.approx(1 + 3 + 4 + 2.0)


def test_segments_are_maximal_runs() -> None:
    assert segments(np.array([2, 2, 0, 0, 0, 2])) == [Segment(0, 2, 2), Segment(2, 5, 0), Segment(5, 6, 2)]
    assert segments(np.array([], dtype=np.int64)) == []
    assert viterbi(np.zeros((0, 3)), 1.0).shape == (0,)
