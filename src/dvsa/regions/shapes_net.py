"""The region CNN trained from scratch on the shapes world (``regions.backbone: shapes``).

Faster R-CNN in small: a 5-layer conv trunk of stride 8, an RPN head on it for the proposals, and the
Fast R-CNN head: RoIAlign -> fc6 -> fc7 (the 4096-d region feature) -> scores of K object classes +
background and a class-agnostic box regression.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.rpn import RegionProposalNetwork, RPNHead
from torchvision.ops import roi_align

from dvsa.errors import ParamsError
from dvsa.regions.boxes import clip_boxes, decode_deltas
from dvsa.regions.config import DetectParams, NetParams
from dvsa.regions.model import Prepared, RegionCNN

STRIDE = 8  # input pixels per feature-map cell
MEAN, STD = 0.5, 0.25  # input normalisation of [0, 1] pixels
RPN_PRE_NMS = {"training": 300, "testing": 600}  # anchors kept by objectness before the RPN's NMS
RPN_POST_NMS_TEST = 300  # RPN proposals kept after its NMS at inference (then cut to detect.n_proposals)


def make_trunk(channels: list[int]) -> nn.Sequential:
    """Five 3x3 conv + BN + ReLU layers, strides 2, 2, 1, 2, 1 (total stride 8)."""
    if len(channels) != 4 or min(channels) < 1:
        raise ParamsError(f"regions.net.channels: expected 4 positive widths, got {channels}")
    c1, c2, c3, c4 = channels
    specs = [(3, c1, 2), (c1, c2, 2), (c2, c3, 1), (c3, c3, 2), (c3, c4, 1)]
    layers: list[nn.Module] = []
    for c_in, c_out, stride in specs:
        layers += [nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


def receptive_field(trunk: nn.Sequential) -> int:
    """Receptive field of one output cell of `trunk`, in input pixels."""
    size, jump = 1, 1
    for m in trunk:
        if isinstance(m, nn.Conv2d):
            size += (m.kernel_size[0] - 1) * jump
            jump *= m.stride[0]
    return size


class RoIHead(nn.Module):
    """RoIAlign -> fc6 -> fc7 -> (class scores, box deltas): the Fast R-CNN head."""

    def __init__(self, in_channels: int, roi_size: int, fc6_dim: int, fc7_dim: int, n_classes: int) -> None:
        super().__init__()
        self.roi_size = roi_size
        self.fc6 = nn.Linear(in_channels * roi_size * roi_size, fc6_dim)
        self.fc7 = nn.Linear(fc6_dim, fc7_dim)
        self.cls_score = nn.Linear(fc7_dim, n_classes + 1)  # 0 = background
        self.bbox_pred = nn.Linear(fc7_dim, 4)

    def pool(self, fmap: torch.Tensor, rois: list[torch.Tensor]) -> torch.Tensor:
        """(R, C, P, P): each box of rois[i] (network pixels) cut out of fmap[i] (B, C, h, w)."""
        return roi_align(fmap, rois, self.roi_size, spatial_scale=1.0 / STRIDE, sampling_ratio=-1, aligned=True)

    def embed(self, pooled: torch.Tensor) -> torch.Tensor:
        """fc7 (R, D) of pooled cells (R, C, P, P)."""
        return F.relu(self.fc7(F.relu(self.fc6(pooled.flatten(1)))))

    def forward(self, fmap: torch.Tensor, rois: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        fc7 = self.embed(self.pool(fmap, rois))  # (R, D)
        return fc7, self.cls_score(fc7), self.bbox_pred(fc7)


class ShapesRegionCNN(RegionCNN):
    kind = "shapes"

    def __init__(
        self, net: NetParams, classes: list[str], rpn_batch_per_image: int = 64, rpn_proposals: int = 64
    ) -> None:
        """`rpn_batch_per_image` anchors are sampled for the RPN loss and `rpn_proposals` proposals kept per
        image while training; neither matters at inference."""
        super().__init__()
        if net.input_size % STRIDE:
            raise ParamsError(f"regions.net.input_size: must be a multiple of {STRIDE}, got {net.input_size}")
        self.net, self.classes = net, list(classes)
        self.fc7_dim = net.fc7_dim
        self.trunk = make_trunk(net.channels)
        anchors = AnchorGenerator(sizes=(tuple(net.anchor_sizes),), aspect_ratios=(tuple(net.aspect_ratios),))
        self.rpn = RegionProposalNetwork(
            anchors,
            RPNHead(net.channels[-1], anchors.num_anchors_per_location()[0]),
            fg_iou_thresh=0.7,
            bg_iou_thresh=0.3,
            batch_size_per_image=rpn_batch_per_image,
            positive_fraction=0.5,
            pre_nms_top_n=dict(RPN_PRE_NMS),
            post_nms_top_n={"training": rpn_proposals, "testing": RPN_POST_NMS_TEST},
            nms_thresh=0.7,
        )
        self.head = RoIHead(net.channels[-1], net.roi_size, net.fc6_dim, net.fc7_dim, len(classes))

    def input_size(self, width: int, height: int) -> tuple[int, int]:
        return self.net.input_size, self.net.input_size

    def trunk_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, S/8, S/8) feature map of a batch x (B, 3, S, S) in [0, 1]."""
        return self.trunk((x - MEAN) / STD)

    def features(self, prepared: Prepared) -> torch.Tensor:
        return self.trunk_features(torch.stack(prepared.images).to(self.device))

    def proposals(
        self, x: torch.Tensor, fmap: torch.Tensor, targets: list[dict[str, torch.Tensor]] | None = None
    ) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
        """RPN proposals per image (best first) and, when training with targets, the RPN losses."""
        sizes = [(x.shape[2], x.shape[3])] * len(x)
        return self.rpn(ImageList(x, sizes), OrderedDict(feat=fmap), targets)

    def detect(self, prepared: Prepared, fmaps: Any, params: DetectParams) -> list[tuple[torch.Tensor, torch.Tensor]]:
        x = torch.stack(prepared.images).to(fmaps.device)  # (B, 3, S, S)
        props, _ = self.proposals(x, fmaps)
        props = [p[: params.n_proposals] for p in props]
        _, logits, deltas = self.head(fmaps, props)
        probs = logits.float().softmax(1)  # (R, K + 1)
        scores = probs[:, 1:].max(1).values  # (R,): best object class
        s = self.net.input_size
        boxes = clip_boxes(decode_deltas(torch.cat(props).float(), deltas.float()), s, s)  # (R, 4)
        sizes = [len(p) for p in props]
        return list(zip(boxes.split(sizes), scores.split(sizes)))

    def encode(self, fmaps: Any, rois: list[torch.Tensor]) -> torch.Tensor:
        return self.head.embed(self.head.pool(fmaps, rois))

    def classify(self, fmaps: torch.Tensor, rois: list[torch.Tensor]) -> torch.Tensor:
        """Class logits (R, K + 1) of the given boxes."""
        return self.head(fmaps, rois)[1]

    def checkpoint_extra(self) -> dict[str, Any]:
        return {"classes": self.classes}
