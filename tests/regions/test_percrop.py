"""Shared-conv RoIAlign (Fast R-CNN) vs per-crop (R-CNN) features of the same network."""

from __future__ import annotations

import numpy as np
import torch
from benchmarks.percrop import context_margin, encode_per_crop

from dvsa.regions.config import NetParams
from dvsa.regions.model import to_tensor
from dvsa.regions.shapes_net import STRIDE, ShapesRegionCNN
from tests.regions.toy import draw_scene


def model_and_image() -> tuple[ShapesRegionCNN, torch.Tensor]:
    torch.manual_seed(0)
    net = NetParams(input_size=128, channels=[8, 16, 16, 32], roi_size=5, fc6_dim=32, fc7_dim=48)
    model = ShapesRegionCNN(net, ["a", "b"]).eval()
    for bn in model.trunk.modules():  # non-trivial BatchNorm statistics
        if isinstance(bn, torch.nn.BatchNorm2d):
            bn.running_mean.uniform_(-0.2, 0.2)
            bn.running_var.uniform_(0.5, 2.0)
    image, _ = draw_scene(np.random.default_rng(1), 128, 128, 3)
    return model, to_tensor(image, 128, 128)


def test_aligned_interior_boxes_agree() -> None:
    model, x = model_and_image()
    side = model.head.roi_size * STRIDE  # 40 px: one roi cell per feature-map cell
    m = context_margin(model)
    assert m == 24  # receptive field 39 px
    starts = range(m, 128 - m - side + 1, STRIDE)
    boxes = torch.tensor([[float(x0), float(y0), x0 + side, y0 + side] for x0 in starts for y0 in starts])
    with torch.no_grad():
        shared = model.encode(model.trunk_features(x[None]), [boxes])
    crop = encode_per_crop(model, x, boxes)
    assert shared.abs().max() > 0.01  # features are not trivially zero
    torch.testing.assert_close(crop, shared, atol=1e-4, rtol=1e-4)


def test_other_boxes_differ_but_stay_close() -> None:
    """Off-grid, resized boxes: RoIAlign approximates the per-crop warp; both are real features."""
    model, x = model_and_image()
    boxes = torch.tensor([[30.0, 33, 61, 70], [45, 40, 90, 71]])
    with torch.no_grad():
        shared = model.encode(model.trunk_features(x[None]), [boxes])
    crop = encode_per_crop(model, x, boxes)
    diff = (crop - shared).abs().max()
    assert diff > 1e-4
    cos = torch.nn.functional.cosine_similarity(crop, shared, dim=1)
    assert (cos > 0.8).all()
