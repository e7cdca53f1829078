from __future__ import annotations

import pytest
import torch

from dvsa.regions.select import pack_regions, select_detections
from dvsa.regions.store import N_REGIONS


def grid_boxes(n: int) -> torch.Tensor:
    """n disjoint 8x8 boxes."""
    return torch.tensor([[10.0 * i, 0, 10 * i + 8, 8] for i in range(n)])


def test_nms_keeps_best_of_overlapping_and_sorts() -> None:
    boxes = torch.tensor([[0.0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60], [0, 0, 10, 10.5]])
    scores = torch.tensor([0.5, 0.9, 0.7, 0.1])
    keep = select_detections(boxes, scores, n_keep=19, nms_iou=0.5)
    assert keep.tolist() == [1, 2]  # box 0 and 3 overlap box 1 (IoU > 0.5) and score lower


def test_top_19_of_many_best_first() -> None:
    scores = torch.rand(40, generator=torch.Generator().manual_seed(0))
    keep = select_detections(grid_boxes(40), scores, n_keep=N_REGIONS - 1, nms_iou=0.5)
    assert len(keep) == 19
    assert keep.tolist() == scores.argsort(descending=True)[:19].tolist()


def test_min_score_and_degenerate_boxes_are_dropped() -> None:
    boxes = torch.cat([grid_boxes(3), torch.tensor([[5.0, 5, 5.5, 20]])])
    keep = select_detections(boxes, torch.tensor([0.9, 0.05, 0.6, 0.99]), nms_iou=0.5, min_score=0.1)
    assert keep.tolist() == [0, 2]


def test_pack_puts_whole_image_first_and_pads() -> None:
    boxes, scores, n = pack_regions(grid_boxes(3), torch.tensor([0.9, 0.8, 0.7]), width=33, height=17)
    assert n == 4 and boxes.shape == (N_REGIONS, 4) and scores.shape == (N_REGIONS,)
    assert boxes[0].tolist() == [0.0, 0.0, 33.0, 17.0] and scores[0] == 1.0
    assert torch.equal(boxes[1:4], grid_boxes(3))
    assert torch.count_nonzero(boxes[4:]) == 0 and torch.count_nonzero(scores[4:]) == 0
    full_boxes, _, full_n = pack_regions(grid_boxes(19), torch.ones(19), 200, 10)
    assert full_n == N_REGIONS and torch.equal(full_boxes[1:], grid_boxes(19))
    with pytest.raises(ValueError):
        pack_regions(grid_boxes(20), torch.ones(20), 10, 10)
