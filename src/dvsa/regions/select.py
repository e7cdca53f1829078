"""The paper's 20 regions per image (Sec. 3.1.1): the whole image + the top 19 detections after NMS."""

from __future__ import annotations

import torch
from torchvision.ops import nms

from dvsa.regions.store import N_REGIONS

MIN_BOX_SIZE = 1.0  # pixels: thinner detections are dropped before NMS


def select_detections(
    boxes: torch.Tensor,  # (N, 4)
    scores: torch.Tensor,  # (N,)
    n_keep: int = N_REGIONS - 1,
    nms_iou: float = 0.5,
    min_score: float = 0.0,
) -> torch.Tensor:
    """Indices (≤ n_keep,) of the detections kept by class-agnostic NMS, best score first."""
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    ok = torch.nonzero((scores >= min_score) & (w >= MIN_BOX_SIZE) & (h >= MIN_BOX_SIZE)).flatten()
    keep = nms(boxes[ok].float(), scores[ok].float(), nms_iou)  # sorted by decreasing score
    return ok[keep[:n_keep]]


def whole_image_box(width: float, height: float) -> torch.Tensor:
    """(1, 4): region 0 of every image."""
    return torch.tensor([[0.0, 0.0, float(width), float(height)]])


def pack_regions(
    det_boxes: torch.Tensor,  # (n, 4), n ≤ N_REGIONS - 1, best first
    det_scores: torch.Tensor,  # (n,)
    width: float,
    height: float,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Region rows of one image: (N_REGIONS, 4) boxes, (N_REGIONS,) scores, how many rows are real.

    Row 0 is the whole image with score 1; rows 1..n the detections; the rest is zero padding.
    """
    n = len(det_boxes)
    if n > N_REGIONS - 1:
        raise ValueError(f"{n} detections; at most {N_REGIONS - 1} fit beside the whole image")
    boxes = torch.zeros(N_REGIONS, 4)
    scores = torch.zeros(N_REGIONS)
    boxes[0] = whole_image_box(width, height)[0]
    scores[0] = 1.0
    boxes[1 : n + 1] = det_boxes
    scores[1 : n + 1] = det_scores
    return boxes, scores, n + 1
