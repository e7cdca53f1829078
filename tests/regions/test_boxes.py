from __future__ import annotations

import torch

from dvsa.regions.boxes import clip_boxes, decode_deltas, encode_deltas, hflip_boxes, label_proposals, scale_boxes


def test_label_proposals_by_iou() -> None:
    gt = torch.tensor([[0.0, 0, 10, 10], [20, 20, 40, 40]])
    classes = torch.tensor([3, 7])
    props = torch.tensor(
        [
            [0.0, 0, 10, 10],  # IoU 1 with object 0
            [0.0, 0, 10, 8],  # IoU 0.8 with object 0
            [0.0, 0, 10, 4],  # IoU 0.4: ignored between bg_iou 0.3 and fg_iou 0.5
            [20.0, 20, 30, 25],  # IoU 0.125 with object 1: background
            [60.0, 60, 70, 70],  # touches nothing: background
            [21.0, 21, 41, 41],  # IoU ~0.82 with object 1
        ]
    )
    labels, matched = label_proposals(props, gt, classes, fg_iou=0.5, bg_iou=0.3)
    assert labels.tolist() == [3, 3, -1, 0, 0, 7]
    assert torch.equal(matched[5], gt[1]) and torch.equal(matched[1], gt[0])
    labels, _ = label_proposals(props, gt, classes, fg_iou=0.5, bg_iou=0.5)
    assert labels.tolist() == [3, 3, 0, 0, 0, 7]  # no ignore band


def test_label_proposals_without_objects_is_all_background() -> None:
    labels, _ = label_proposals(
        torch.rand(4, 4) * 10 + torch.tensor([0, 0, 10, 10]),
        torch.zeros(0, 4),
        torch.zeros(0, dtype=torch.int64),
        0.5,
        0.5,
    )
    assert labels.tolist() == [0, 0, 0, 0]


def test_deltas_round_trip_and_identity() -> None:
    boxes = torch.tensor([[10.0, 10, 30, 50], [0, 0, 5, 5]])
    targets = torch.tensor([[12.0, 8, 35, 47], [1, 1, 4, 9]])
    deltas = encode_deltas(boxes, targets)
    torch.testing.assert_close(decode_deltas(boxes, deltas), targets)
    torch.testing.assert_close(decode_deltas(boxes, torch.zeros(2, 4)), boxes)


def test_clip_scale_flip() -> None:
    b = torch.tensor([[-5.0, 3, 70, 40]])
    assert clip_boxes(b, 64, 32).tolist() == [[0.0, 3.0, 64.0, 32.0]]
    assert scale_boxes(b, 2.0, 0.5).tolist() == [[-10.0, 1.5, 140.0, 20.0]]
    assert hflip_boxes(torch.tensor([[10.0, 1, 20, 2]]), 64).tolist() == [[44.0, 1.0, 54.0, 2.0]]
