"""Batches over labels.h5: images with ``seq_per_img`` captions each, as neuraltalk2's DataLoader."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from dvsa.data.labels import Labels
from dvsa.errors import InputError


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


class EpochBatches:
    """The training batch of iteration i: epoch i // n is shuffled (and its captions drawn) by an RNG seeded
    with (seed, epoch), so any iteration's batch is known without the ones before it (exact resume, any
    number of processes). A last batch of fewer than `min_images` images is left out of each epoch (the
    ranking loss needs a negative)."""

    def __init__(
        self, labels: Labels, split: str, batch_size: int, seq_per_img: int, seed: int, min_images: int = 1
    ) -> None:
        self.labels, self.split, self.batch_size, self.seq_per_img, self.seed = (
            labels, split, batch_size, seq_per_img, seed)
        n = len(labels.split_indices(split))
        if n == 0:
            raise InputError(f"labels: no images in the {split} split")
        full, rest = divmod(n, batch_size)
        self.per_epoch = full + (rest >= min_images)
        if self.per_epoch == 0:
            raise InputError(f"labels: {n} {split} images, fewer than a batch needs ({min_images})")
        self._epoch, self._next, self._it = -1, 0, iter(())

    def at(self, iteration: int) -> CaptionBatch:
        epoch, pos = divmod(iteration, self.per_epoch)
        if epoch != self._epoch or pos != self._next:
            rng = np.random.default_rng([self.seed, epoch])
            self._it = iterate_batches(self.labels, self.split, self.batch_size, self.seq_per_img, rng)
            self._epoch, self._next = epoch, 0
            for _ in range(pos):
                next(self._it)
                self._next += 1
        self._next += 1
        return next(self._it)
