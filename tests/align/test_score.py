"""Eqs. (7), (8) and (9) against explicit loops; padding regions and words take no part."""

from __future__ import annotations

import pytest
import torch

from dvsa.align.score import image_sentence_scores, ranking_loss


def _random_batch(seed: int, k: int = 4, l: int = 5, r: int = 6, t: int = 7, h: int = 8):
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(k, r, h, generator=g, dtype=torch.float64)
    s = torch.randn(l, t, h, generator=g, dtype=torch.float64)
    n_reg = torch.randint(1, r + 1, (k,), generator=g)
    n_words = torch.randint(1, t + 1, (l,), generator=g)
    rmask = torch.arange(r)[None, :] < n_reg[:, None]
    wmask = torch.arange(t)[None, :] < n_words[:, None]
    return v, rmask, s, wmask, n_reg.tolist(), n_words.tolist()


@pytest.mark.parametrize("seed", range(3))
def test_eq8_matches_loops(seed: int) -> None:
    v, rmask, s, wmask, n_reg, n_words = _random_batch(seed)
    got = image_sentence_scores(v, rmask, s, wmask, "max")
    for k in range(v.shape[0]):
        for l in range(s.shape[0]):
            want = sum(max(float(v[k, i] @ s[l, t]) for i in range(n_reg[k])) for t in range(n_words[l]))
            assert got[k, l].item() == pytest.approx(want, abs=1e-9)


@pytest.mark.parametrize("seed", range(3))
def test_eq7_matches_loops(seed: int) -> None:
    v, rmask, s, wmask, n_reg, n_words = _random_batch(seed)
    got = image_sentence_scores(v, rmask, s, wmask, "sum")
    for k in range(v.shape[0]):
        for l in range(s.shape[0]):
            want = sum(max(0.0, float(v[k, i] @ s[l, t])) for i in range(n_reg[k]) for t in range(n_words[l]))
            assert got[k, l].item() == pytest.approx(want, abs=1e-9)


def test_padding_takes_no_part() -> None:
    v, rmask, s, wmask, _, _ = _random_batch(5)
    before = image_sentence_scores(v, rmask, s, wmask, "max")
    v2, s2 = v.clone(), s.clone()
    v2[~rmask] = 1e3  # would win every max if padding regions were looked at
    s2[~wmask] = 1e3
    assert torch.allclose(image_sentence_scores(v2, rmask, s2, wmask, "max"), before)
    assert torch.allclose(image_sentence_scores(v2, rmask, s2, wmask, "sum"), image_sentence_scores(v, rmask, s, wmask, "sum"))


@pytest.mark.parametrize("margin", [1.0, 0.3])
def test_eq9_matches_loops(margin: float) -> None:
    g = torch.Generator().manual_seed(1)
    scores = torch.randn(6, 6, generator=g, dtype=torch.float64) * 2
    b = scores.shape[0]
    want = 0.0
    for k in range(b):
        for l in range(b):
            if l != k:
                want += max(0.0, float(scores[k, l] - scores[k, k] + margin))  # rank sentences for image k
                want += max(0.0, float(scores[l, k] - scores[k, k] + margin))  # rank images for sentence k
    assert ranking_loss(scores, margin).item() == pytest.approx(want, abs=1e-9)


def test_eq9_is_zero_when_margins_hold_and_has_gradients_both_ways() -> None:
    scores = torch.full((3, 3), -5.0) + 10 * torch.eye(3)
    assert ranking_loss(scores).item() == 0.0
    scores = torch.zeros(3, 3, requires_grad=True)
    ranking_loss(scores).backward()
    # every off-diagonal pair violates by 1 in both directions: S_kk gets -4, each S_kl +2
    assert torch.equal(scores.grad, torch.full((3, 3), 2.0) - 6 * torch.eye(3))
