"""The one feature-source type: for rows of dataset.json / regions.h5, the region features (B, R, D) float32
and the mask of real regions (B, R) bool, with D (``dim``) said by the source. Every model reads its image
through one: the alignment model (``CachedFeatures(store, geometry=False)``), both captioners (the cached
regions.h5, or pixels through the CNN: ``dvsa.caption.cnn.PixelFeatures``, when the CNN is finetuned; one
region per row: ``dvsa.features.one_region.OneRegion``), and both CLIs (the regions they extract:
``region_mask``, ``with_geometry``).

With ``geometry`` each region's fc7 is followed by where the detector put it and how sure it was (the box
and score of regions.h5, never the true objects): x0/W, y0/H, x1/W, y1/H, its area / (W H) and its score,
W x H being region 0's box (the whole image). fc7 of an RoI says what is in the box, not where the box is;
without this a captioner cannot tell left from right or big from small. D = fc7's D + GEOMETRY_DIM then."""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from dvsa.errors import InputError
from dvsa.regions.store import RegionStore

GEOMETRY_DIM = 6


def feature_dim(fc7_dim: int, geometry: bool) -> int:
    """D of a source whose regions are `fc7_dim`-d fc7 features, followed by their geometry when `geometry`."""
    return fc7_dim + (GEOMETRY_DIM if geometry else 0)


def check_feature_dim(expects: int, gives: int, reader: str, source: str, hint: str = "") -> None:
    """The one feature-dimension check: `reader` (a model file) expects `expects`-d features, `source` (a
    regions.h5, a region CNN, a CNN to finetune) gives `gives`-d; different is an InputError naming both."""
    if expects != gives:
        raise InputError(f"{reader}: expects {expects}-d features but {source} gives {gives}-d{hint}")


def region_mask(n_regions: np.ndarray | Tensor, n_slots: int) -> Tensor:
    """(B, R) bool: the first n_regions[b] of the R = `n_slots` regions of image b are real (not padding)."""
    n = torch.as_tensor(np.asarray(n_regions, dtype=np.int64))
    return torch.arange(n_slots)[None, :] < n[:, None]


def region_geometry(boxes: Tensor, scores: Tensor) -> Tensor:
    """(B, R, 6) geometry of boxes (B, R, 4) xyxy with scores (B, R), relative to region 0 (the image)."""
    whole = boxes[:, :1]  # (B, 1, 4)
    size = (whole[..., 2:] - whole[..., :2]).clamp_min(1e-6)  # (B, 1, 2) W, H
    origin = whole[..., :2]
    rel = torch.cat([(boxes[..., :2] - origin) / size, (boxes[..., 2:] - origin) / size], dim=-1)  # (B, R, 4)
    area = (rel[..., 2] - rel[..., 0]) * (rel[..., 3] - rel[..., 1])  # (B, R)
    return torch.cat([rel, area[..., None], scores[..., None]], dim=-1)


def with_geometry(feats: Tensor, boxes: Tensor, scores: Tensor, mask: Tensor) -> Tensor:
    """fc7 (B, R, D) followed by the geometry of the real regions (zero on padding): (B, R, D + 6)."""
    geometry = region_geometry(boxes, scores) * mask[..., None]
    return torch.cat([feats, geometry.to(feats.dtype)], dim=-1)


class FeatureSource(Protocol):
    """Region features of dataset rows; ``dim`` is D, what a model reading them must be built for."""

    @property
    def dim(self) -> int: ...

    def __call__(self, rows: np.ndarray, rng: np.random.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Features (B, R, D) and mask (B, R) of `rows` (B,); `rng` given = training (augmentation)."""
        ...


class CachedFeatures:
    """The region features of regions.h5, read per batch (no augmentation: they are fixed)."""

    def __init__(self, store: RegionStore, geometry: bool) -> None:
        self.store, self.geometry = store, geometry

    @property
    def dim(self) -> int:
        return feature_dim(self.store.dim, self.geometry)

    def __call__(self, rows: np.ndarray, rng: np.random.Generator | None = None) -> tuple[Tensor, Tensor]:
        rows = np.asarray(rows, dtype=np.int64)
        feats = torch.from_numpy(self.store.feats(rows))  # (B, R, D)
        mask = torch.from_numpy(self.store.mask(rows))  # (B, R)
        if self.geometry:
            boxes, scores = torch.from_numpy(self.store.boxes[rows]), torch.from_numpy(self.store.scores[rows])
            feats = with_geometry(feats, boxes, scores, mask)
        return feats, mask


def feature_stats(source: FeatureSource, rows: np.ndarray, whole: bool, chunk: int = 256) -> tuple[Tensor, Tensor]:
    """Mean and variance (D',) of the cached features of `rows`: of region 0 when `whole`, else of every
    real region; streamed in chunks (memory does not grow with the dataset)."""
    total = np.zeros(source.dim)
    total_sq = np.zeros(source.dim)
    count = 0
    for s in range(0, len(rows), chunk):
        feats, mask = source(rows[s : s + chunk])  # (C, R, D'), (C, R)
        real = (feats[:, 0] if whole else feats[mask]).numpy().astype(np.float64)  # (n, D')
        total += real.sum(0)
        total_sq += (real * real).sum(0)
        count += len(real)
    mean = total / max(count, 1)
    var = np.maximum(total_sq / max(count, 1) - mean * mean, 0.0)
    return torch.from_numpy(mean).float(), torch.from_numpy(var).float()
