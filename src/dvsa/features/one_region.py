"""One region of an image as a 1-region image: the feature source of the region captioner (§4.3).

Row k of the region-phrase dataset is region ``regions[k]`` of image row ``image_rows[k]`` of regions.h5;
its feature is that region's row of a base source over whole images (its fc7, followed by its geometry
relative to the image when the base adds it), and the mask says the one region is real. A captioner with
``image: whole`` or ``image: regions`` reads it alike (R = 1).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from dvsa.features.source import FeatureSource


class OneRegion:
    """Features (B, 1, D) and an all-true mask (B, 1) of single regions, from `base` (a FeatureSource over
    the rows of regions.h5, e.g. dvsa.features.CachedFeatures)."""

    def __init__(self, base: FeatureSource, image_rows: np.ndarray, regions: np.ndarray) -> None:
        if len(image_rows) != len(regions):
            raise ValueError(f"{len(image_rows)} image rows but {len(regions)} regions")
        self.base = base
        self.image_rows = np.asarray(image_rows, dtype=np.int64)  # (K,)
        self.regions = np.asarray(regions, dtype=np.int64)  # (K,)

    @property
    def dim(self) -> int:
        return self.base.dim

    def __call__(self, rows: np.ndarray, rng: np.random.Generator | None = None) -> tuple[Tensor, Tensor]:
        rows = np.asarray(rows, dtype=np.int64)
        feats, _ = self.base(self.image_rows[rows], rng)  # (B, R, D)
        picked = feats[torch.arange(len(rows)), torch.from_numpy(self.regions[rows])]  # (B, D)
        return picked[:, None], torch.ones(len(rows), 1, dtype=torch.bool)
