"""The per-crop R-CNN form of the shapes region CNN: each box is warped (with context) to a fixed-size crop
and the whole network runs once per crop. This is what sharing the trunk avoids; it exists as the
reference that benchmarks/regions_percrop.py measures shared-conv extraction against (benchmark-only code,
checked by tests/regions/test_percrop.py).

The crop is the box scaled to roi_size * STRIDE pixels plus a context margin big enough for the trunk's
receptive field. For a box aligned to the stride grid, exactly roi_size * STRIDE pixels wide and high and
with its context inside the image, the crop is the image's own pixels and the central roi_size² cells of
the crop's feature map equal the shared map's cells that RoIAlign reads: the two forms then agree.
"""

from __future__ import annotations

import math

import torch
from torchvision.ops import roi_align

from dvsa.regions.shapes_net import STRIDE, ShapesRegionCNN, receptive_field


def context_margin(model: ShapesRegionCNN) -> int:
    """Pixels of context on each side of the warped box: half the receptive field, in whole cells."""
    return math.ceil((receptive_field(model.trunk) - 1) / 2 / STRIDE) * STRIDE


def warp_crops(image: torch.Tensor, boxes: torch.Tensor, box_px: int, margin: int) -> torch.Tensor:
    """(n, 3, box_px + 2 margin, same) crops of image (3, H, W): each box (n, 4) resampled bilinearly so
    that it covers box_px pixels, with `margin` pixels of its surroundings at the same scale."""
    w = (boxes[:, 2] - boxes[:, 0]).clamp(min=1e-3)
    h = (boxes[:, 3] - boxes[:, 1]).clamp(min=1e-3)
    mx, my = w * margin / box_px, h * margin / box_px
    context = torch.stack([boxes[:, 0] - mx, boxes[:, 1] - my, boxes[:, 2] + mx, boxes[:, 3] + my], 1)
    size = box_px + 2 * margin
    return roi_align(image[None], [context], size, spatial_scale=1.0, sampling_ratio=1, aligned=True)


@torch.no_grad()
def encode_per_crop(model: ShapesRegionCNN, image: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """fc7 (n, D) of boxes (n, 4) (network pixels) of one image (3, S, S) in [0, 1], one crop per box."""
    p = model.head.roi_size
    margin = context_margin(model)
    crops = warp_crops(image, boxes, p * STRIDE, margin)  # (n, 3, c, c)
    fmap = model.trunk_features(crops)  # (n, C, c / 8, c / 8)
    k = margin // STRIDE
    return model.head.embed(fmap[:, :, k : k + p, k : k + p])
