"""Batches over labels.h5: images with ``seq_per_img`` captions each, as neuraltalk2's DataLoader."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from dvsa.data.labels import Labels


@dataclass
class CaptionBatch:
    image_ix: np.ndarray  # (B,) int64 rows of dataset.json / regions.h5
    labels: np.ndarray  # (B * seq_per_img, L) int64, 0-padded; captions of image b at rows b*S .. b*S+S-1
    lengths: np.ndarray  # (B * seq_per_img,) int64


def iterate_batches(
    labels: Labels,
    split: str,
    batch_size: int,
    seq_per_img: int,
    rng: np.random.Generator | None = None,
) -> Iterator[CaptionBatch]:
    """One pass over `split`: shuffled when `rng` is given, in order otherwise; the last batch may be short.

    An image with fewer than `seq_per_img` captions has some drawn twice (neuraltalk2 does the same); with
    more, `seq_per_img` distinct ones are drawn (in order when `rng` is None).
    """
    order = labels.split_indices(split)
    if rng is not None:
        order = rng.permutation(order)
    for start in range(0, len(order), batch_size):
        image_ix = order[start : start + batch_size]
        rows = [_pick(labels, int(i), seq_per_img, rng) for i in image_ix]
        flat = np.concatenate(rows)  # (B * S,)
        yield CaptionBatch(
            image_ix=image_ix.astype(np.int64),
            labels=labels.labels[flat].astype(np.int64),
            lengths=labels.label_length[flat].astype(np.int64),
        )


def _pick(labels: Labels, i: int, seq_per_img: int, rng: np.random.Generator | None) -> np.ndarray:
    first, last = int(labels.label_start_ix[i]) - 1, int(labels.label_end_ix[i])  # 0-indexed, exclusive end
    n = last - first
    if n >= seq_per_img:
        picks = rng.choice(n, seq_per_img, replace=False) if rng is not None else np.arange(seq_per_img)
    else:
        picks = rng.integers(0, n, seq_per_img) if rng is not None else np.arange(seq_per_img) % n
    return first + picks
