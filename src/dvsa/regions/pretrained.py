"""The region CNN for real photos, assembled from pretrained torchvision weights (never downloaded).

Encoder: VGG16 or AlexNet trained on ImageNet, in the Fast R-CNN form: conv layers up to conv5 (stride 16)
once per image, RoIAlign of each box to the grid the classifier expects (7x7 or 6x6, replacing the last
max-pool), then the classifier's fc6 -> fc7 (4096-d). Detector: a torchvision Faster R-CNN trained on COCO.

Weight files are looked up in the torch hub cache ($TORCH_HOME/hub/checkpoints/, under the names that
torchvision gives them) or at explicit paths; a missing file is a WeightsError that names the file and
where to put it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import nn
from torchvision.models import alexnet, vgg16
from torchvision.models.detection import (
    fasterrcnn_mobilenet_v3_large_320_fpn,
    fasterrcnn_mobilenet_v3_large_fpn,
    fasterrcnn_resnet50_fpn,
)
from torchvision.ops import roi_align

from dvsa.errors import WeightsError
from dvsa.regions.config import PretrainedParams
from dvsa.regions.model import Prepared, RegionCNN, to_tensor

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DOWNLOADS = "https://download.pytorch.org/models"
CONV5_STRIDE = 16
MIN_SIDE = 64  # network pixels: AlexNet's conv layers need >= 31, VGG16's >= 16


@dataclass(frozen=True)
class Arch:
    """A torchvision architecture (built without weights) and the file name of its pretrained weights."""

    build: Callable[[], nn.Module]
    filename: str
    roi_size: int = 0  # encoders: the grid that fc6 expects


ENCODERS: dict[str, Arch] = {
    "vgg16": Arch(lambda: vgg16(weights=None), "vgg16-397923af.pth", 7),
    "alexnet": Arch(lambda: alexnet(weights=None), "alexnet-owt-7be5be79.pth", 6),
}
_DETECTOR_OPTIONS: dict[str, Any] = {"weights": None, "weights_backbone": None, "box_score_thresh": 0.0,
                                     "box_detections_per_img": 100}
DETECTORS: dict[str, Arch] = {
    "fasterrcnn_resnet50_fpn": Arch(lambda: fasterrcnn_resnet50_fpn(**_DETECTOR_OPTIONS),
                                    "fasterrcnn_resnet50_fpn_coco-258fb6c6.pth"),
    "fasterrcnn_mobilenet_v3_large_fpn": Arch(lambda: fasterrcnn_mobilenet_v3_large_fpn(**_DETECTOR_OPTIONS),
                                              "fasterrcnn_mobilenet_v3_large_fpn-fb6a3cc7.pth"),
    "fasterrcnn_mobilenet_v3_large_320_fpn": Arch(lambda: fasterrcnn_mobilenet_v3_large_320_fpn(**_DETECTOR_OPTIONS),
                                                  "fasterrcnn_mobilenet_v3_large_320_fpn-907ea3f9.pth"),
}


def hub_checkpoints() -> Path:
    """$TORCH_HOME/hub/checkpoints (torch's default: ~/.cache/torch/hub/checkpoints)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def weights_path(arch: Arch, override: str, param: str) -> Path:
    """The weights file of `arch`: `override` when set, else the hub cache; missing -> WeightsError."""
    if override:
        path = Path(override)
        if not path.is_file():
            raise WeightsError(f"{path}: weights file not found (set by regions.pretrained.{param} in params.yaml)")
        return path
    path = hub_checkpoints() / arch.filename
    if not path.is_file():
        raise WeightsError(f"{arch.filename} not found: put torchvision's file ({DOWNLOADS}/{arch.filename}) in "
                           f"{path.parent}/ or set regions.pretrained.{param} in params.yaml to its path")
    return path


def load_weights(module: nn.Module, path: Path, name: str, assign: bool) -> None:
    """Load a torchvision state-dict file into `module` (the same architecture, built without weights).

    `assign` keeps the file's tensors as the parameters (for modules built on the meta device). BatchNorm
    counters (num_batches_tracked), which torchvision's frozen-BN files lack, may be missing.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same user error
        raise WeightsError(f"{path}: cannot read it as a state dict for {name} ({type(e).__name__})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path}: not a state dict (a mapping of names to tensors) for {name}")
    expected = module.state_dict(keep_vars=True)
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        raise WeightsError(f"{path}: does not fit torchvision's {name} ({len(missing)} missing keys, e.g. "
                           f"{missing[:2]}; {len(unexpected)} unexpected, e.g. {unexpected[:2]})")
    try:
        module.load_state_dict(state, strict=False, assign=assign)
    except RuntimeError as e:
        first = next((line.strip() for line in str(e).splitlines() if "size mismatch" in line), str(e).splitlines()[0])
        raise WeightsError(f"{path}: does not fit torchvision's {name} ({first})") from None


def build_encoder(backbone: str) -> nn.Module:
    """torchvision's VGG16/AlexNet on the meta device: no memory, no random init, weights to be assigned."""
    with torch.device("meta"):
        return ENCODERS[backbone].build()


class PretrainedRegionCNN(RegionCNN):
    kind = "pretrained"
    fc7_dim = 4096

    def __init__(self, backbone: str, pretrained: PretrainedParams, encoder: nn.Module, detector: nn.Module) -> None:
        super().__init__()
        self.backbone, self.pretrained = backbone, pretrained
        self.roi_size = ENCODERS[backbone].roi_size
        self.trunk = encoder.features[:-1]  # up to conv5 + ReLU; RoIAlign replaces the last max-pool
        self.fc = encoder.classifier[:-1]  # fc6, ReLU, (dropout), fc7, ReLU: the 4096-d feature
        self.detector = detector
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(3, 1, 1), persistent=False)

    @classmethod
    def assemble(cls, backbone: str, pretrained: PretrainedParams) -> PretrainedRegionCNN:
        """Build from the pretrained weight files (see :func:`weights_path`)."""
        enc_arch, det_arch = ENCODERS[backbone], DETECTORS[pretrained.detector]
        enc_path = weights_path(enc_arch, pretrained.encoder_weights, "encoder_weights")
        det_path = weights_path(det_arch, pretrained.detector_weights, "detector_weights")
        encoder = build_encoder(backbone)
        load_weights(encoder, enc_path, backbone, assign=True)
        detector = det_arch.build()
        load_weights(detector, det_path, pretrained.detector, assign=True)
        return cls(backbone, pretrained, encoder, detector).eval()

    @classmethod
    def skeleton(cls, backbone: str, pretrained: PretrainedParams) -> PretrainedRegionCNN:
        """The architecture without weights, for loading a region_cnn checkpoint with assign=True."""
        return cls(backbone, pretrained, build_encoder(backbone), DETECTORS[pretrained.detector].build())

    def prepare(self, images: list[Image.Image]) -> Prepared:
        """Shorter side to min_size, longer side at most max_size (aspect kept), as Fast R-CNN; a very
        elongated image (e.g. 5000 x 20) is stretched so that its shorter side keeps MIN_SIDE pixels."""
        tensors = []
        for im in images:
            w, h = im.size
            s = min(self.pretrained.min_size / min(w, h), self.pretrained.max_size / max(w, h))
            tensors.append(to_tensor(im, max(MIN_SIDE, round(w * s)), max(MIN_SIDE, round(h * s))))
        return Prepared(tensors, [im.size for im in images])

    def features(self, prepared: Prepared) -> list[torch.Tensor]:
        return [self.trunk(((x - self.mean) / self.std)[None]) for x in prepared.images]  # (1, C, h/16, w/16) each

    def detect(self, prepared: Prepared, fmaps: Any, n_proposals: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        out = self.detector(list(prepared.images))  # boxes in the given images' pixels
        return [(d["boxes"], d["scores"]) for d in out]

    def encode(self, fmaps: Any, rois: list[torch.Tensor]) -> torch.Tensor:
        pooled = [roi_align(f, [r], self.roi_size, 1.0 / CONV5_STRIDE, sampling_ratio=-1, aligned=True)
                  for f, r in zip(fmaps, rois)]
        return self.fc(torch.cat(pooled).flatten(1))  # (R, 4096)

    def checkpoint_extra(self) -> dict[str, Any]:
        return {"backbone": self.backbone}
