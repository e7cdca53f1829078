"""Params of the `region_cnn` and `regions` stages (section ``regions`` of params.yaml).

`region_cnn` reads ``backbone``, ``seed`` and the section of the chosen backbone only (``shapes``: ``net`` +
``train``; ``vgg16`` or ``alexnet``: the pretrained files and sizes), so that a param the backbone ignores retrains
nothing (dvc.yaml lists ``regions.${regions.backbone}``); `regions` reads ``detect``,
``batch_size``, ``feats_dtype``, ``shard_size`` and ``on_bad_image``, so that changing how regions are picked
does not retrain the network.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Backbone = Literal["shapes", "vgg16", "alexnet"]
Detector = Literal[
    "fasterrcnn_resnet50_fpn", "fasterrcnn_mobilenet_v3_large_fpn", "fasterrcnn_mobilenet_v3_large_320_fpn"
]


@dataclass
class NetParams:
    """The region CNN trained from scratch on the shapes world (``backbone: shapes``), Fast R-CNN form:
    a conv trunk of stride 8 run once per image, RoIAlign of each box to ``roi_size``², fc6 -> fc7 (the
    cached feature) -> class scores (K classes + background) and class-agnostic box regression; proposals
    from an RPN head on the same trunk."""

    input_size: int = field(default=128, metadata={"min": 32})  # images are resized to input_size² pixels
    channels: list[int] = field(default_factory=lambda: [16, 32, 64, 128])  # conv widths (4 stages)
    roi_size: int = field(default=5, metadata={"min": 1})  # RoIAlign output: roi_size x roi_size cells
    fc6_dim: int = field(default=512, metadata={"min": 1})
    fc7_dim: int = field(default=4096, metadata={"min": 1})  # the feature cached in regions.h5
    anchor_sizes: list[float] = field(default_factory=lambda: [16.0, 32.0, 64.0])  # RPN anchors, input pixels
    aspect_ratios: list[float] = field(default_factory=lambda: [0.5, 1.0, 2.0])  # height / width


@dataclass
class TrainParams:
    """Training of ``backbone: shapes`` on the world's object classes (shape x colour + background)."""

    epochs: int = field(default=10, metadata={"min": 1})
    batch_size: int = field(default=16, metadata={"min": 1})  # images per step
    lr: float = field(default=1e-3, metadata={"gt": 0.0})  # Adam, cosine decay to 0 over the epochs
    weight_decay: float = field(default=1e-4, metadata={"min": 0.0})
    rois_per_image: int = field(default=32, metadata={"min": 1})  # sampled proposals per image for the head
    fg_fraction: float = field(default=0.5, metadata={"gt": 0.0, "max": 1.0})
    fg_iou: float = field(default=0.5, metadata={"gt": 0.0, "max": 1.0})  # IoU >= fg_iou: the object's class
    bg_iou: float = field(default=0.5, metadata={"min": 0.0, "max": 1.0})  # IoU < bg_iou: background
    rpn_batch_per_image: int = field(default=64, metadata={"min": 1})  # anchors sampled for the RPN loss
    rpn_proposals: int = field(default=64, metadata={"min": 1})  # RPN proposals per image after NMS
    hflip: bool = True  # random horizontal flips


@dataclass
class PretrainedParams:
    """``backbone: vgg16 | alexnet``: ImageNet fc7 from torchvision weights, boxes from a torchvision
    Faster R-CNN trained on COCO. Empty paths mean the torch hub cache: $TORCH_HOME/hub/checkpoints/ with
    the file names torchvision uses (e.g. vgg16-397923af.pth). Nothing is ever downloaded."""

    encoder_weights: str = ""
    detector: Detector = "fasterrcnn_resnet50_fpn"
    detector_weights: str = ""
    min_size: int = field(default=600, metadata={"min": 32})  # shorter image side for the encoder (Fast R-CNN)
    max_size: int = field(default=1000, metadata={"min": 32})


@dataclass
class ShapesParams:
    """``backbone: shapes``: the network and its training."""

    net: NetParams = field(default_factory=NetParams)
    train: TrainParams = field(default_factory=TrainParams)


@dataclass
class DetectParams:
    """How the 19 regions are picked: proposals -> scores -> class-agnostic NMS -> top 19."""

    proposals: Literal["rpn", "oracle"] = "rpn"  # oracle: the true boxes (ablations only; shapes world)
    n_proposals: int = field(default=48, metadata={"min": 1})  # RPN proposals scored per image
    nms_iou: float = field(default=0.5, metadata={"gt": 0.0, "max": 1.0})
    min_score: float = field(default=0.0, metadata={"min": 0.0, "max": 1.0})  # detections below are dropped
    # the pretrained detector's input size (shorter side, longest-side cap); 0: torchvision's own (800, 1333).
    # Set to regions.<backbone>.min_size / max_size, the detector sees the encoder's image without a resize.
    min_size: int = field(default=0, metadata={"min": 0})
    max_size: int = field(default=0, metadata={"min": 0})


@dataclass
class RegionsParams:
    backbone: Backbone = "shapes"
    seed: int = 123
    shapes: ShapesParams = field(default_factory=ShapesParams)
    vgg16: PretrainedParams = field(default_factory=PretrainedParams)
    alexnet: PretrainedParams = field(default_factory=PretrainedParams)
    detect: DetectParams = field(default_factory=DetectParams)
    batch_size: int = field(default=32, metadata={"min": 1})  # images per encoder batch in the `regions` stage
    feats_dtype: Literal["float16", "float32"] = "float16"
    shard_size: int = field(default=256, metadata={"min": 1})  # images per finished shard (resume after a kill)
    on_bad_image: Literal["error", "skip"] = "error"  # skip: the row gets n_regions 0 and is listed in the metrics

    @property
    def net(self) -> NetParams:
        return self.shapes.net

    @property
    def train(self) -> TrainParams:
        return self.shapes.train

    @property
    def pretrained(self) -> PretrainedParams:
        """The section of the chosen pretrained backbone (vgg16's while the backbone is shapes: unused)."""
        return self.alexnet if self.backbone == "alexnet" else self.vgg16

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
