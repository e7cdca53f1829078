"""Box arithmetic: IoU labelling of proposals, R-CNN box regression deltas, network <-> original pixels.

Boxes are xyxy float tensors in pixels; (x0, y0) is the top-left corner and (x1, y1) the bottom-right one,
so a box covering the whole W x H image is [0, 0, W, H].
"""

from __future__ import annotations

import math

import torch
from torchvision.ops import box_iou

BBOX_CLIP = math.log(1000.0 / 16)  # largest log-scale change decoded (as in torchvision's BoxCoder)
DELTA_WEIGHTS = (10.0, 10.0, 5.0, 5.0)  # Fast R-CNN's normalisation of (dx, dy, dw, dh)


def label_proposals(
    proposals: torch.Tensor,  # (P, 4)
    gt_boxes: torch.Tensor,  # (G, 4)
    gt_labels: torch.Tensor,  # (G,) int64, classes 1..K
    fg_iou: float,
    bg_iou: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Label each proposal by its best IoU with the true boxes, as R-CNN finetuning does.

    Returns labels (P,) int64: the matched object's class when IoU >= fg_iou, 0 (background) when
    IoU < bg_iou, -1 (ignored) in between; and the matched true box (P, 4) (meaningful where label > 0).
    """
    if len(gt_boxes) == 0:
        return torch.zeros(len(proposals), dtype=torch.int64), torch.zeros_like(proposals)
    iou = box_iou(proposals, gt_boxes)  # (P, G)
    best, idx = iou.max(dim=1)  # (P,)
    labels = gt_labels[idx].clone()
    labels[best < fg_iou] = -1
    labels[best < bg_iou] = 0
    return labels, gt_boxes[idx]


def encode_deltas(boxes: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Regression targets t = (dx, dy, dw, dh) that move `boxes` (N, 4) onto `targets` (N, 4) (R-CNN app. C)."""
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    cx, cy = boxes[:, 0] + 0.5 * w, boxes[:, 1] + 0.5 * h
    tw, th = targets[:, 2] - targets[:, 0], targets[:, 3] - targets[:, 1]
    tcx, tcy = targets[:, 0] + 0.5 * tw, targets[:, 1] + 0.5 * th
    wx, wy, ww, wh = DELTA_WEIGHTS
    return torch.stack([wx * (tcx - cx) / w, wy * (tcy - cy) / h, ww * torch.log(tw / w), wh * torch.log(th / h)], 1)


def decode_deltas(boxes: torch.Tensor, deltas: torch.Tensor) -> torch.Tensor:
    """Apply deltas (N, 4) to boxes (N, 4): the inverse of :func:`encode_deltas`."""
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    cx, cy = boxes[:, 0] + 0.5 * w, boxes[:, 1] + 0.5 * h
    wx, wy, ww, wh = DELTA_WEIGHTS
    dx, dy = deltas[:, 0] / wx, deltas[:, 1] / wy
    dw, dh = (deltas[:, 2] / ww).clamp(max=BBOX_CLIP), (deltas[:, 3] / wh).clamp(max=BBOX_CLIP)
    pcx, pcy, pw, ph = cx + dx * w, cy + dy * h, w * torch.exp(dw), h * torch.exp(dh)
    return torch.stack([pcx - 0.5 * pw, pcy - 0.5 * ph, pcx + 0.5 * pw, pcy + 0.5 * ph], 1)


def clip_boxes(boxes: torch.Tensor, width: float, height: float) -> torch.Tensor:
    """Clip boxes (N, 4) to the image [0, width] x [0, height]."""
    x = boxes[:, 0::2].clamp(0, width)
    y = boxes[:, 1::2].clamp(0, height)
    return torch.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], 1)


def scale_boxes(boxes: torch.Tensor, sx: float, sy: float) -> torch.Tensor:
    """Multiply x coordinates by sx and y coordinates by sy (e.g. network pixels -> original pixels)."""
    return boxes * boxes.new_tensor([sx, sy, sx, sy])


def hflip_boxes(boxes: torch.Tensor, width: float) -> torch.Tensor:
    """The boxes (N, 4) of a horizontally flipped image of this width."""
    return torch.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], 1)
