"""Mirrored scenes for the captioner's cross-entropy training: an image's boxes mirrored left-right (or
top-bottom), its captions' direction words swapped to match ("A left of B" -> "A right of B").

Why: teacher forced, a captioner trained on the shapes world gives P(left) / P(right) at the direction word
that does not move when every box of the image is mirrored (benchmarks/captioner_ablation.py's
"mirror pairs" column): it learns which direction words follow which objects in the train images from fc7 and
never reads the boxes, which no change of the attention cured. A mirrored copy of a scene has the same
objects, so the same fc7, and the opposite directions: only the geometry can tell them apart. The region
features are kept and only the geometry that follows fc7 moves: the same objects at mirrored places, a scene
the shapes world could draw (its objects look the same wherever they lie). Measured (docs/results.md, "The
captioners do not read the boxes"): it does not make the direction word follow the boxes (mirror pairs 0.52
alone, 0.49 with pair attention; 0.5 for a model blind to them), so ``captioner.mirror_prob`` stays 0.

The direction words are ordinary English (``SWAPS``), not the truth judge's tables; words absent from the
vocabulary are left out. Only the boxes x0, y0, x1, y1 move (region 0, the whole image, maps to itself);
the area and the score do not change.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from dvsa.features import GEOMETRY_DIM

SWAPS = (  # (axis, {word: its mirror image}); axis 0 = left-right, 1 = top-bottom
    (0, {"left": "right", "right": "left"}),
    (1, {"above": "below", "below": "above", "over": "under", "under": "over", "beneath": "above"}),
)
AXIS_OF = {word: axis for axis, swap in SWAPS for word in swap}  # the axis whose mirror changes a direction word
MIRROR_STREAM = 0x6D6972  # the mirror draws' key beside (seed, iteration): apart from step_rng's ranks


class Mirror:
    """Draws, per image of a global batch, whether it is mirrored on each axis (with probability `prob`),
    and applies it to region features (B, R, D) with geometry and to token captions (B * S, L)."""

    def __init__(self, ix_to_word: dict[int, str], prob: float) -> None:
        self.prob = prob
        index = {w: i for i, w in ix_to_word.items()}
        self.tables = []  # per axis: (V + 1,) token -> token
        for _, swap in SWAPS:
            table = torch.arange(len(ix_to_word) + 1)
            for word, image in swap.items():
                if word in index and image in index:
                    table[index[word]] = index[image]
            self.tables.append(table)

    def draw(self, n_images: int, seed: int, iteration: int) -> Tensor:
        """(n_images, 2) bool: image b mirrored left-right, top-bottom; the same on every rank."""
        rng = np.random.default_rng([seed, iteration, MIRROR_STREAM])
        return torch.from_numpy(rng.random((n_images, len(SWAPS))) < self.prob)

    @staticmethod
    def boxes(feats: Tensor, mask: Tensor, flips: Tensor) -> Tensor:
        """feats (B, R, D) with the geometry x0, y0, x1, y1, area, score last; flips (B, 2) -> the features with
        the real regions' boxes mirrored where flipped: x0' = 1 - x1, x1' = 1 - x0 (y likewise)."""
        out = feats.clone()
        at = feats.shape[-1] - GEOMETRY_DIM  # x0
        for axis in range(len(SWAPS)):
            rows = (flips[:, axis].to(mask.device)[:, None] & mask)[..., None]  # (B, R, 1)
            lo, hi = feats[..., at + axis : at + axis + 1], feats[..., at + axis + 2 : at + axis + 3]  # (B, R, 1)
            out[..., at + axis : at + axis + 1] = torch.where(rows, 1 - hi, lo)
            out[..., at + axis + 2 : at + axis + 3] = torch.where(rows, 1 - lo, hi)
        return out

    def captions(self, caps: Tensor, flips: Tensor, seq_per_img: int) -> Tensor:
        """caps (B * S, L) of the flipped images' with their direction words swapped (0-padding stays)."""
        rows = flips.repeat_interleave(seq_per_img, dim=0).to(caps.device)  # (B * S, 2)
        for axis, table in enumerate(self.tables):
            caps = torch.where(rows[:, axis : axis + 1], table.to(caps.device)[caps], caps)
        return caps
