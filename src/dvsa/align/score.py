"""Image-sentence scores (eqs. (7), (8)) and the max-margin ranking loss (eq. (9)), vectorised over a batch."""

from __future__ import annotations

import torch


def fragment_dots(v: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """v (K, R, h), s (L, T, h) -> v_i . s_t for every image k, sentence l: (K, R, L, T), one matrix product."""
    k, r, h = v.shape
    l, t, _ = s.shape
    return (v.reshape(k * r, h) @ s.reshape(l * t, h).T).view(k, r, l, t)


def image_sentence_scores(
    v: torch.Tensor,  # (K, R, h) region vectors of K images
    region_mask: torch.Tensor,  # (K, R) bool, real regions
    s: torch.Tensor,  # (L, T, h) word vectors of L sentences
    word_mask: torch.Tensor,  # (L, T) bool, real words
    kind: str = "max",
) -> torch.Tensor:
    """The (K, L) score matrix S_kl of every image k with every sentence l, in one pass.

    kind "max", eq. (8):  S_kl = sum_{t in g_l} max_{i in g_k} v_i . s_t
    kind "sum", eq. (7):  S_kl = sum_{t in g_l} sum_{i in g_k} max(0, v_i . s_t)
    Padding regions take no part in the max / sum over i, padding words none in the sum over t.
    """
    dots = fragment_dots(v, s)  # (K, R, L, T)
    rmask = region_mask[:, :, None, None]  # (K, R, 1, 1)
    if kind == "max":
        if not bool(region_mask.all()):
            dots = dots.masked_fill(~rmask, float("-inf"))
        per_word = dots.max(dim=1).values  # (K, L, T); its backward is one scatter (amax's is slower)
    elif kind == "sum":
        per_word = (dots.clamp(min=0) * rmask).sum(dim=1)  # (K, L, T)
    else:
        raise ValueError(f"unknown score kind {kind!r} (known: max, sum)")
    return (per_word * word_mask[None, :, :]).sum(dim=2)  # (K, L)


def ranking_loss(scores: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    """Eq. (9) over a batch where image k and sentence k correspond; scores (B, B) with S[k, l] = S_kl.

    C = sum_k [ sum_l max(0, S_kl - S_kk + margin)      (rank sentences for image k)
              + sum_l max(0, S_lk - S_kk + margin) ]    (rank images for sentence k)
    The terms l = k, a constant 2 * margin per k with no gradient, are left out.
    """
    diag = scores.diagonal()  # (B,)
    off = ~torch.eye(scores.shape[0], dtype=torch.bool, device=scores.device)  # (B, B)
    rank_sentences = (scores - diag[:, None] + margin).clamp(min=0)  # [k, l]: S_kl - S_kk
    rank_images = (scores - diag[None, :] + margin).clamp(min=0)  # [l, k]: S_lk - S_kk
    return (rank_sentences * off).sum() + (rank_images * off).sum()
