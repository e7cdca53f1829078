"""Image-sentence ranking metrics as in the paper's Table 1: R@K (%) and median rank, with chance levels.

Image annotation: for each image, all sentences are ranked by S_kl; the rank is that of its first
ground-truth sentence. Image search: for each sentence, all images are ranked; the rank is that of its image.
Ties are broken against the ground truth (a constant score gets chance-level figures, never perfect ones).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from math import comb

import numpy as np

KS = (1, 5, 10)


def annotation_ranks(scores: np.ndarray, sentence_image: np.ndarray, image_ix: np.ndarray | None = None) -> np.ndarray:
    """(K,) 1-based rank of the best-ranked ground-truth sentence of each image.

    scores (K, L): rows images, columns sentences; sentence_image (L,): the row of each sentence's image;
    image_ix (K,): the row numbers of `scores`' rows in that numbering (default 0..K-1, for blocks of rows).
    """
    rows = np.arange(scores.shape[0]) if image_ix is None else np.asarray(image_ix)
    gt = sentence_image[None, :] == rows[:, None]  # (K, L)
    best_gt = np.where(gt, scores, -np.inf).max(axis=1)  # (K,)
    return 1 + ((scores >= best_gt[:, None]) & ~gt).sum(axis=1)


def search_ranks(scores: np.ndarray, sentence_image: np.ndarray) -> np.ndarray:
    """(L,) 1-based rank of each sentence's own image among all K images (scores (K, L))."""
    cols = np.arange(scores.shape[1])
    gt_score = scores[sentence_image, cols]  # (L,)
    others = np.ones_like(scores, dtype=bool)
    others[sentence_image, cols] = False
    return 1 + ((scores >= gt_score[None, :]) & others).sum(axis=0)


def recall_summary(ranks: np.ndarray, ks: tuple[int, ...] = KS) -> dict[str, float]:
    """{"r1": %, "r5": %, "r10": %, "medr": median rank} of 1-based ranks."""
    out = {f"r{k}": 100.0 * float(np.mean(ranks <= k)) for k in ks}
    out["medr"] = float(np.median(ranks))
    return out


def annotation_chance(n_gt: np.ndarray, n_sentences: int, ks: tuple[int, ...] = KS) -> dict[str, float]:
    """Expected figures of a random ranking for image annotation.

    An image with g ground-truth sentences among L has P(first one at rank <= K) = 1 - C(L-g, K) / C(L, K);
    R@K is its mean over images, "medr" the median of the rank distribution pooled over images.
    """
    n_gt = np.asarray(n_gt)
    values, counts = np.unique(n_gt, return_counts=True)
    weights = counts / counts.sum()

    def cdf(k: int) -> float:
        return float(sum(w * (1.0 - comb(n_sentences - g, k) / comb(n_sentences, k)) for g, w in zip(values, weights)))

    out = {f"r{k}": 100.0 * cdf(k) for k in ks}
    out["medr"] = _median(cdf, n_sentences)
    return out


def search_chance(n_images: int, ks: tuple[int, ...] = KS) -> dict[str, float]:
    """Expected figures of a random ranking for image search: P(rank <= K) = K / N; medr = (N + 1) / 2."""
    out = {f"r{k}": 100.0 * min(k, n_images) / n_images for k in ks}
    out["medr"] = _median(lambda k: min(k, n_images) / n_images, n_images)
    return out


@dataclass
class Ranks:
    """The 1-based ranks behind Table 1's figures, kept for the per-image and per-sentence tables."""

    annotation: np.ndarray  # (K,) of each image: its best ground-truth sentence among all L sentences
    search: np.ndarray  # (L,) of each sentence: its own image among all K images
    sentence_image: np.ndarray  # (L,) position (0..K-1) of each sentence's image

    @classmethod
    def of(cls, scores: np.ndarray, sentence_image: np.ndarray) -> Ranks:
        """Both directions' ranks of the (K, L) image-sentence score matrix."""
        return cls(annotation_ranks(scores, sentence_image), search_ranks(scores, sentence_image), sentence_image)


def ranking_metrics(ranks: Ranks) -> dict[str, dict[str, float]]:
    """Table 1 figures for both directions, with the chance level of each beside it."""
    n_images = len(ranks.annotation)
    n_gt = np.bincount(ranks.sentence_image, minlength=n_images)
    return {
        "annotation": recall_summary(ranks.annotation),
        "annotation_chance": annotation_chance(n_gt, len(ranks.search)),
        "search": recall_summary(ranks.search),
        "search_chance": search_chance(n_images),
    }


def _median(cdf: Callable[[int], float], n: int) -> float:
    """Median of a distribution on 1..n given its CDF: the midpoint when the CDF is exactly 1/2 on a step."""
    lower = next(k for k in range(1, n + 1) if cdf(k) >= 0.5 - 1e-12)
    upper = next(k for k in range(lower, n + 1) if cdf(k) > 0.5 + 1e-12)
    return (lower + upper) / 2.0
